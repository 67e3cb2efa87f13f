"""spore.zlib against CPython's C zlib on the Canterbury corpus, measured in the same run.

For compression at levels 1, 6 and 9 and for decompression (of C zlib's level-6
streams): throughput in MB/s of uncompressed data for both and their ratio
ours/C (over the whole corpus, and the median of the per-file ratios), and for
compression the compression ratios (uncompressed / compressed) and the size
ratio ours/C (1.0 = the same size; the project's target is within 2% at level
6), again whole-corpus and per-file median. Times are process CPU time, which
for single-threaded code is wall time on an idle machine and does not count
time other processes take from a busy one. Every stream is round-tripped
through the other implementation before it counts.

    python benchmarks/zlib_bench.py            # whole corpus, a few minutes
    python benchmarks/zlib_bench.py --quick    # first 32 KB of each file, levels 1 and 6
    python benchmarks/zlib_bench.py --hostile  # decoding cost of hostile streams, a minute

Writes benchmarks/results/zlib.json, or with --hostile zlib-hostile.json: for
each adversary of tests/zlib/hostile_streams.py (and, as the yardstick, C
zlib's level-6 stream of the corpus) the CPU seconds per MB of *input* for
spore.zlib and for C zlib, their ratio, and each one's cost relative to its own
cost on the ordinary stream (issue 13: decoding cost per input byte must stay
within a small constant factor of ordinary data's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
import zlib as c_zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import spore.zlib as sz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "zlib"))
from hostile_streams import HOSTILE  # noqa: E402 - the adversaries live beside their test

CANTERBURY = ROOT.parent / "shared" / "corpora" / "canterbury"
RESULTS = Path(__file__).resolve().parent / "results"


def load_corpus(limit: int | None) -> dict[str, bytes]:
    files = {}
    for line in (CANTERBURY / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        name = name.lstrip("*")
        data = (CANTERBURY / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SystemExit(f"{name} does not match SHA256SUMS")
        files[name] = data[:limit] if limit else data
    return dict(sorted(files.items()))


def cpu_timed(fn: Callable[[], bytes], repeats: int) -> tuple[bytes, float]:
    """The result and the best CPU time of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return out, max(best, 1e-9)


def measure(corpus: dict[str, bytes], levels: list[int], c_repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {"compress": {}, "decompress": {}}
    for level in levels:
        per_file = {}
        for name, data in corpus.items():
            ours, ours_s = cpu_timed(lambda data=data, level=level: sz.compress(data, level), 1)
            theirs, c_s = cpu_timed(lambda data=data, level=level: c_zlib.compress(data, level), c_repeats)
            if c_zlib.decompress(ours) != data:
                raise SystemExit(f"C zlib cannot read our level-{level} stream of {name}")
            per_file[name] = {"bytes": len(data), "ours_size": len(ours), "c_size": len(theirs),
                              "ours_s": ours_s, "c_s": c_s}  # fmt: skip
            print(f"  level {level} {name:14s} {len(ours) / len(theirs):.4f}x size, {ours_s:7.2f} s", flush=True)
        results["compress"][level] = per_file
    per_file = {}
    for name, data in corpus.items():
        stream = c_zlib.compress(data, 6)
        ours, ours_s = cpu_timed(lambda stream=stream: sz.decompress(stream), 1)
        theirs, c_s = cpu_timed(lambda stream=stream: c_zlib.decompress(stream), c_repeats)
        if ours != data or theirs != data:
            raise SystemExit(f"decompression of {name} is wrong")
        per_file[name] = {"bytes": len(data), "ours_s": ours_s, "c_s": c_s}
    results["decompress"] = per_file
    return results


def totals(per_file: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Whole-corpus throughput and sizes, and the medians of the per-file ours/C ratios."""
    total = {key: sum(f[key] for f in per_file.values()) for key in next(iter(per_file.values()))}
    mb = total["bytes"] / 1e6
    summary = {"mb": mb, "ours_mb_s": mb / total["ours_s"], "c_mb_s": mb / total["c_s"]}
    summary["speed_ratio"] = summary["ours_mb_s"] / summary["c_mb_s"]
    summary["slowdown"] = 1 / summary["speed_ratio"]
    summary["median_file_speed_ratio"] = statistics.median(f["c_s"] / f["ours_s"] for f in per_file.values())
    if "ours_size" in total:
        summary["ours_size"] = total["ours_size"]
        summary["c_size"] = total["c_size"]
        summary["size_ratio"] = total["ours_size"] / total["c_size"]
        summary["median_file_size_ratio"] = statistics.median(f["ours_size"] / f["c_size"] for f in per_file.values())
        summary["ours_compression_ratio"] = total["bytes"] / total["ours_size"]
        summary["c_compression_ratio"] = total["bytes"] / total["c_size"]
    return summary


def print_tables(results: dict[str, Any]) -> None:
    """One row per operation: ours beside C zlib, ratios ours/C whole-corpus and per-file median."""
    rows = [(f"compress -{level}", totals(per_file)) for level, per_file in results["compress"].items()]
    rows.append(("decompress", totals(results["decompress"])))
    print()
    print(f"{'operation':12s} {'ours MB/s':>9s} {'C MB/s':>8s} {'ours/C':>8s} {'median':>8s}   "
          f"{'ours ratio':>10s} {'C ratio':>8s} {'ours/C size':>11s} {'median':>7s}")  # fmt: skip
    for name, t in rows:
        line = (f"{name:12s} {t['ours_mb_s']:9.3f} {t['c_mb_s']:8.1f} {t['speed_ratio']:8.4f} "
                f"{t['median_file_speed_ratio']:8.4f}")  # fmt: skip
        if "size_ratio" in t:
            line += (f"   {t['ours_compression_ratio']:10.3f} {t['c_compression_ratio']:8.3f} "
                     f"{t['size_ratio']:11.4f} {t['median_file_size_ratio']:7.4f}")  # fmt: skip
        print(line)
    print("ours/C: speed is ours MB/s over C's (C is 1/x times faster); size is our compressed size over C's.")
    print("median: of the same ratio taken file by file. ratio: uncompressed / compressed size.")
    if 6 in results["compress"]:
        print("\nlevel 6 compressed size per file, ours / C zlib:")
        for name, f in results["compress"][6].items():
            print(f"  {name:14s} {f['ours_size']:8d} {f['c_size']:8d} {f['ours_size'] / f['c_size']:.4f}")


def measure_hostile(corpus: dict[str, bytes], size: int, repeats: int) -> dict[str, dict[str, float]]:
    """CPU seconds per MB of input, spore.zlib and C zlib, for the ordinary stream and each adversary."""
    co = c_zlib.compressobj(6, c_zlib.DEFLATED, -15)
    streams = {"ordinary (Canterbury, C level 6)": co.compress(b"".join(corpus.values())) + co.flush()}
    streams.update((name, make(size)) for name, make in HOSTILE.items())
    rows = {}
    for name, stream in streams.items():
        ours, ours_s = cpu_timed(lambda stream=stream: sz.decompress(stream, -15), repeats)
        theirs, c_s = cpu_timed(lambda stream=stream: c_zlib.decompress(stream, -15), repeats)
        if ours != theirs:
            raise SystemExit(f"{name}: spore.zlib and C zlib disagree")
        mb = len(stream) / 1e6
        rows[name] = {"input_bytes": len(stream), "output_bytes": len(ours), "ours_s_per_mb": ours_s / mb,
                      "c_s_per_mb": c_s / mb}  # fmt: skip
        print(f"  {name:34s} {ours_s / mb:8.3f} s/MB", flush=True)
    ordinary = next(iter(rows.values()))
    for row in rows.values():
        row["ours_over_c"] = row["ours_s_per_mb"] / row["c_s_per_mb"]
        row["ours_vs_ordinary"] = row["ours_s_per_mb"] / ordinary["ours_s_per_mb"]
        row["c_vs_ordinary"] = row["c_s_per_mb"] / ordinary["c_s_per_mb"]
    return rows


def print_hostile(rows: dict[str, dict[str, float]]) -> None:
    print("\n| stream | input bytes | output bytes | ours s/MB | C s/MB | ours/C | ours vs ordinary | C vs ordinary |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['input_bytes']:,} | {r['output_bytes']:,} | {r['ours_s_per_mb']:.3f} | "
              f"{r['c_s_per_mb']:.4f} | {r['ours_over_c']:.0f} | {r['ours_vs_ordinary']:.2f} | "
              f"{r['c_vs_ordinary']:.2f} |")  # fmt: skip
    print("s/MB: CPU seconds per MB of input. vs ordinary: the cost per input byte over the same decoder's on row 1.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="first 32 KB of each file, levels 1 and 6")
    ap.add_argument("--hostile", action="store_true", help="decoding cost of hostile streams")
    ap.add_argument("--hostile-bytes", type=int, default=200_000, help="input size of each hostile stream")
    ap.add_argument("--out", type=Path, help="results file (default benchmarks/results/zlib.json or zlib-hostile.json)")
    args = ap.parse_args()
    if args.hostile:
        corpus = load_corpus(None)
        rows = measure_hostile(corpus, args.hostile_bytes, repeats=3)
        print_hostile(rows)
        report = {"timing": "process CPU time, best of 3 for each", "python": platform.python_version(),
                  "c_zlib": c_zlib.ZLIB_RUNTIME_VERSION, "hostile_bytes": args.hostile_bytes, "rows": rows}  # fmt: skip
        out = args.out or RESULTS / "zlib-hostile.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {out}")
        return
    corpus = load_corpus(32 * 1024 if args.quick else None)
    levels = [1, 6] if args.quick else [1, 6, 9]
    results = measure(corpus, levels, c_repeats=3)
    print_tables(results)
    report = {
        "corpus": "canterbury" + (" (first 32 KB of each file)" if args.quick else ""),
        "timing": "process CPU time, best of 3 for C zlib, 1 run for spore.zlib",
        "python": platform.python_version(),
        "c_zlib": c_zlib.ZLIB_RUNTIME_VERSION,
        "summary": {
            **{f"compress_level_{lvl}": totals(pf) for lvl, pf in results["compress"].items()},
            "decompress": totals(results["decompress"]),
        },
        "per_file": results,
    }
    out = args.out or RESULTS / "zlib.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
