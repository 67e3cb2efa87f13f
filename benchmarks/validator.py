"""Validator cost: seconds to score one peer, and a whole window's validation vs peers.

For N = 1..32 peers, N signed updates land in each of two windows of a real
local store; the validator runs a full window step on each (gather and
verify every update, measure it on its own pages and a random batch, detect
copies, aggregate, rate, publish, write the ledger). In the first window it
has no cost estimate yet and measures every update: that step's time, its
slope per peer (least squares) and linearity are the cost figures. In the
second it measures only what fits its budget (60% of the window) and the
rest keep their standing: that step must fit inside the window.

    python benchmarks/validator.py                   # tiny preset, N = 1 2 4 8 16 32
    python benchmarks/validator.py --preset small

Writes benchmarks/results/validator-PRESET.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spore import model as M
from spore.data import load_corpus
from spore.swarm import codec, wire
from spore.swarm.identity import Identity
from spore.swarm.peer import Peer
from spore.swarm.protocol import RUN_KEY, sign_json, update_key
from spore.swarm.store import LocalStore
from spore.swarm.validator import Validator, new_manifest

RESULTS = Path(__file__).resolve().parent / "results"


def one_window(preset: str, n: int, corpus, work: Path) -> dict:
    store = LocalStore(work / "store")
    vid = Identity.generate()
    p = M.get_preset(preset)
    manifest = new_manifest(vid, p, windows=4, window_seconds=p.window_seconds, grace_seconds=0.5,
                            corpus_digest=corpus.digest)
    v = Validator.open_run(store, vid, manifest, work / "validator", corpus)
    v.manifest = dataclasses.replace(v.manifest, t0=time.time() - 10 * p.window_seconds)
    v.replica.manifest = v.manifest
    store.put(RUN_KEY, sign_json(v.manifest.to_json(), vid))

    # One real pseudo-gradient; every peer sends it with its own noise, key and signature.
    trainer = Peer(store, Identity.generate(), v.manifest, work / "trainer", corpus)
    pseudo_gradient, _ = trainer.train(0)
    idents = [Identity.generate() for _ in range(n)]
    steps = []
    for w in range(2):
        base = v.replica.digest()
        for i, ident in enumerate(idents):
            g = torch.Generator().manual_seed(i)
            noisy = [d + torch.randn(d.shape, generator=g) * d.abs().mean() for d in pseudo_gradient]
            update = [codec.compress(d, pl, manifest.codec) for d, pl in zip(noisy, v.replica.plans, strict=True)]
            header = wire.Header(w, ident.id, v.replica.model_id, base, manifest.codec, manifest.index_coding)
            key = update_key(w, ident.id)
            store.put(key, wire.encode(update, header, ident))
            t = v.manifest.open_time(w) + 1
            os.utime(store.root / key, (t, t))
        t0 = time.perf_counter()
        record = v.step()
        steps.append((time.perf_counter() - t0, record))
        assert len(record["submissions"]) == n, record["rejected"]
    v.ledger.close()
    (all_s, first), (budget_s, second) = steps
    return {"peers": n, "step_seconds": all_s, "measure_seconds": first["measure_seconds"],
            "budgeted_step_seconds": budget_s, "budgeted_measured": second["measured"],
            "window_seconds": p.window_seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--peers", default="1,2,4,8,16,32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus()
    rows = []
    for n in [int(x) for x in args.peers.split(",")]:
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_window(args.preset, n, corpus, Path(tmp)))
        rows.append({k: statistics.median(r[k] for r in runs) for k in runs[0]})
        print(f"  {n} peers: step {rows[-1]['step_seconds']:.2f}s (budgeted {rows[-1]['budgeted_step_seconds']:.2f}s)",
              flush=True)
    ns = np.array([r["peers"] for r in rows], dtype=float)
    steps = np.array([r["step_seconds"] for r in rows])
    slope, intercept = np.polyfit(ns, steps, 1)
    residual = float(np.max(np.abs(steps - (slope * ns + intercept)) / steps.max()))
    print(f"validator, preset {args.preset}, 1 torch thread, median of {args.repeats}")
    print(f"{'peers':>6}  {'all measured: step s':>21}{'scoring s':>11}{'s/peer':>8}"
          f"  {'budgeted: step s':>17}{'measured':>9}{'window s':>10}{'fits':>6}")
    for r in rows:
        fits = "yes" if r["budgeted_step_seconds"] < r["window_seconds"] else "NO"
        print(f"{r['peers']:>6}  {r['step_seconds']:>21.2f}{r['measure_seconds']:>11.2f}"
              f"{r['step_seconds'] / r['peers']:>8.3f}  {r['budgeted_step_seconds']:>17.2f}"
              f"{r['budgeted_measured']:>9.0f}{r['window_seconds']:>10.1f}{fits:>6}")
    print(f"linear fit: {slope:.3f} s per peer + {intercept:.2f} s (max deviation {residual:.1%} of the largest step)")
    out = args.out or RESULTS / f"validator-{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "rows": rows, "seconds_per_peer": slope,
                               "fixed_seconds": intercept, "max_linear_deviation": residual}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
