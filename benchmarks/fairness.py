"""Fairness of the Gauntlet: does it keep every honest update and no adversary's?

For each preset and seed, two networks of real processes (`spore swarm run`):
the honest peers alone, and the same number of honest peers plus one of
every built-in adversary (issue 9's attack table included, with a Sybil
flood of `--sybils` extra ids). Optionally one core is kept busy by a
spinning process for the whole run (`--busy`), as a loaded machine would.

Per run it reports, from the validator's signed records (summary.json):

    retention   share of honest peers' valid updates after the warm-up that were aggregated
    pass        share of honest peers' measured windows with outcome +1
    adv-in-G    adversary appearances in gather lists after the warm-up
    lost        windows in which no honest update was applied
    loss        final held-out loss (attacked / all-honest of the same seed)
    val s/w     median seconds the validator spent screening and measuring per window
    zero-after  per adversary: the window after which its weight stayed 0

    python benchmarks/fairness.py                       # tiny, 3 seeds
    python benchmarks/fairness.py --presets tiny small --seeds 3 --busy

Writes benchmarks/results/fairness.json (run folders under benchmarks/results/fairness-runs/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
WINDOWS = {"tiny": 10, "small": 12}
# The attacked network is 4 honest peers, 18 adversaries (most of them train), the validator and the
# store service: 24 processes on the 2-core reference machine. Windows of 10 s (tiny) left it no
# headroom once anything else ran, and peers then lost whole windows; these lengths give about 2x.
WINDOW_SECONDS = {"tiny": 20.0, "small": 24.0}


def adversary_kinds() -> list[str]:
    from spore.swarm.adversary import KINDS

    return sorted(KINDS)


def swarm(out: Path, preset: str, peers: int, windows: int, window_seconds: float, adversaries: list[str],
          sybils: int, reuse: bool = False) -> dict[str, Any]:
    if reuse:
        return json.loads((out / "summary.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "spore", "swarm", "run", "--preset", preset, "--peers", str(peers),
           "--windows", str(windows), "--window-seconds", str(window_seconds), "--out", str(out)]
    for k in adversaries:
        cmd += ["--adversary", k]
    env = {**os.environ, "SPORE_SYBILS": str(sybils)}
    # A run that lost windows exits 1 but still writes its summary: that is a result, not a crash.
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return json.loads((out / "summary.json").read_text())


def spinner() -> subprocess.Popen[bytes]:
    """A process that keeps one core busy; it dies with us (its own group, killed in finally)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def row(preset: str, seed: int, kind: str, s: dict[str, Any], honest_loss: float | None) -> dict[str, Any]:
    return {
        "preset": preset, "seed": seed, "network": kind,
        "honest_retention": s["honest_retention"], "honest_pass_rate": s["honest_pass_rate"],
        "adversaries_in_gather_after_warmup": s["adversaries_in_gather_after_warmup"],
        "windows_without_training": s["windows_without_training"],
        "final_eval_loss": s["final_eval_loss"],
        "loss_vs_honest": None if honest_loss is None else s["final_eval_loss"] / honest_loss,
        "validation_seconds_per_window": s["validation_seconds_per_window"],
        "adversary_zero_weight_after": {
            r["kind"]: s["adversary_zero_weight_after"].get(r["id"]) for r in s["ranking"] if r["kind"] != "honest"
        },
        "theta_consistent": s["theta_consistent"],
    }


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny"], choices=sorted(WINDOWS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--sybils", type=int, default=100, help="extra ids of the sybil-flood adversary")
    ap.add_argument("--busy", action="store_true", help="keep one core busy with a spinning process")
    ap.add_argument("--window-seconds", type=float, default=None, help="default: 20 (tiny), 24 (small)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fairness.json")
    ap.add_argument("--from-runs", action="store_true",
                    help="do not run: tabulate the run folders already in benchmarks/results/fairness-runs/")
    args = ap.parse_args()
    runs = RESULTS / "fairness-runs"
    kinds = adversary_kinds()
    busy = spinner() if args.busy and not args.from_runs else None
    rows: list[dict[str, Any]] = []
    try:
        for preset in args.presets:
            for seed in range(args.seeds):
                common = (preset, args.peers, WINDOWS[preset], args.window_seconds or WINDOW_SECONDS[preset])
                if args.from_runs and not (runs / f"{preset}-{seed}-attacked" / "summary.json").exists():
                    continue
                honest = swarm(runs / f"{preset}-{seed}-honest", *common, [], args.sybils, args.from_runs)
                rows.append(row(preset, seed, "honest", honest, None))
                attacked = swarm(runs / f"{preset}-{seed}-attacked", *common, kinds, args.sybils, args.from_runs)
                rows.append(row(preset, seed, "attacked", attacked, honest["final_eval_loss"]))
                for r in rows[-2:]:
                    print(json.dumps({k: r[k] for k in ("preset", "seed", "network", "honest_retention",
                                                        "adversaries_in_gather_after_warmup")}), flush=True)
    finally:
        if busy is not None:
            os.killpg(busy.pid, signal.SIGKILL)
            busy.wait()

    print(f"\n{args.peers} honest peers; attacked networks add one of each of {len(kinds)} adversary kinds "
          f"(sybil-flood: {args.sybils} ids){'; one core kept busy' if args.busy else ''}")
    print(f"{'preset':<7}{'seed':>5} {'network':<9}{'retention':>10}{'pass':>7}{'adv-in-G':>9}{'lost':>6}"
          f"{'loss':>8}{'vs honest':>10}{'val s/w':>9}")
    for r in rows:
        print(f"{r['preset']:<7}{r['seed']:>5} {r['network']:<9}{fmt(r['honest_retention'], '.3f'):>10}"
              f"{fmt(r['honest_pass_rate'], '.2f'):>7}{r['adversaries_in_gather_after_warmup']:>9}"
              f"{len(r['windows_without_training']):>6}{r['final_eval_loss']:>8.4f}"
              f"{fmt(r['loss_vs_honest'], '.3f'):>10}{fmt(r['validation_seconds_per_window'], '.2f'):>9}")
    summary: dict[str, Any] = {}
    for preset in args.presets:
        for kind in ("honest", "attacked"):
            sel = [r for r in rows if r["preset"] == preset and r["network"] == kind]
            summary[f"{preset}/{kind}"] = {
                "median_honest_retention": statistics.median(r["honest_retention"] or 0.0 for r in sel),
                "min_honest_retention": min(r["honest_retention"] or 0.0 for r in sel),
                "median_honest_pass_rate": statistics.median(r["honest_pass_rate"] or 0.0 for r in sel),
                "adversary_appearances_after_warmup": sum(r["adversaries_in_gather_after_warmup"] for r in sel),
                "median_loss_vs_honest": statistics.median(r["loss_vs_honest"] for r in sel)
                if kind == "attacked" else None,
            }
        zero = {}
        for r in rows:
            if r["preset"] == preset and r["network"] == "attacked":
                for k, w in r["adversary_zero_weight_after"].items():
                    zero.setdefault(k, []).append(w)
        summary[f"{preset}/zero_weight_after"] = zero
    print("\nmedians over seeds:")
    for key, val in summary.items():
        print(f"  {key}: {val}")
    args.out.write_text(json.dumps({"busy": args.busy, "peers": args.peers, "sybils": args.sybils,
                                    "kinds": kinds, "runs": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
