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

Writes benchmarks/results/zlib.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
import zlib as c_zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import spore.zlib as sz

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="first 32 KB of each file, levels 1 and 6")
    ap.add_argument("--out", type=Path, default=RESULTS / "zlib.json")
    args = ap.parse_args()
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
