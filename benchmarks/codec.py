"""Codec throughput and wire ratio on a ~100M-element pseudo-gradient.

Encode = error feedback + chunked top-k + 2-bit quantization + packing + signing;
decode = signature check + full validation + unpacking + densify. Throughput
is MB/s of fp32 input (4 bytes per element). The ratio is dense fp32 bytes
over the whole signed object, for both index codings.

    python benchmarks/codec.py                # 24 x 2048x2048 = 100.7M elements
    python benchmarks/codec.py --quick        # 4 x 1024x1024

Writes benchmarks/results/codec.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from spore.swarm import codec, wire
from spore.swarm.identity import Identity

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tensors", type=int, default=24)
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "codec.json")
    args = ap.parse_args()
    if args.quick:
        args.tensors, args.side, args.repeats = 4, 1024, 2
    torch.set_num_threads(os.cpu_count() or 1)
    p = codec.CodecParams()
    layout = [(f"w{i}", (args.side, args.side)) for i in range(args.tensors)]
    plans = codec.plan_layout(layout, p)
    n = sum(pl.numel for pl in plans)
    g = torch.Generator().manual_seed(0)
    delta = [torch.randn(s, generator=g) * 1e-3 for _, s in layout]
    residual = [torch.zeros(s) for _, s in layout]
    ident = Identity.generate()
    mb = 4 * n / 1e6
    rows = []
    for coding, name in ((wire.PLAIN, "plain 12-bit"), (wire.ELIAS_FANO, "elias-fano")):
        header = wire.Header(0, ident.id, b"m" * 32, b"b" * 32, p, coding)
        enc_t, dec_t = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            update, _ = codec.error_feedback_step(residual, delta, 0.95, plans, p)
            blob = wire.encode(update, header, ident)
            t1 = time.perf_counter()
            _, back = wire.decode(blob, plans, expected_params=p, model_id=b"m" * 32)
            dense = [codec.decompress(u, p) for u in back]
            t2 = time.perf_counter()
            enc_t.append(t1 - t0)
            dec_t.append(t2 - t1)
            del dense, back
        rows.append({
            "index_coding": name,
            "elements": n,
            "wire_bytes": len(blob),
            "ratio": 4 * n / len(blob),
            "encode_MBps": mb / statistics.median(enc_t),
            "decode_MBps": mb / statistics.median(dec_t),
            "encode_s": statistics.median(enc_t),
            "decode_s": statistics.median(dec_t),
        })
    print(f"pseudo-gradient: {args.tensors} x {args.side}x{args.side} = {n / 1e6:.1f}M elements "
          f"({mb:.0f} MB fp32), {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'index coding':<14}{'wire bytes':>14}{'ratio':>9}{'encode MB/s':>13}{'decode MB/s':>13}")
    for r in rows:
        print(f"{r['index_coding']:<14}{r['wire_bytes']:>14,}{r['ratio']:>8.1f}x{r['encode_MBps']:>13.0f}{r['decode_MBps']:>13.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
