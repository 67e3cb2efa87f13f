"""Attack: 4 honest peers plus one of every adversary, against the same 4 honest peers alone.

Both networks run as real processes through `spore swarm run` with the same
preset, windows and window length. Reported: each run's final held-out loss
(and their ratio), where every adversary ended in the ranking, its weight,
how often it was in a gather list after the warm-up, and why its
submissions were rejected.

    python benchmarks/attack.py                  # tiny preset, 8 windows of 8 s
    python benchmarks/attack.py --windows 12

Writes benchmarks/results/attack.json (run folders under benchmarks/results/attack-runs/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ["free-rider", "copier", "noise", "poisoner", "stale", "late", "forger", "malformed", "zero-then-random"]


def swarm(out: Path, args: argparse.Namespace, adversaries: list[str]) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "spore", "swarm", "run", "--preset", args.preset, "--peers", str(args.peers),
           "--windows", str(args.windows), "--window-seconds", str(args.window_seconds), "--out", str(out)]
    for k in adversaries:
        cmd += ["--adversary", k]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--window-seconds", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "attack.json")
    args = ap.parse_args()
    runs = RESULTS / "attack-runs"
    attacked = swarm(runs / "attacked", args, KINDS)
    alone = swarm(runs / "honest", args, [])
    ratio = attacked["final_eval_loss"] / alone["final_eval_loss"]
    reasons: dict[str, set[str]] = {}
    for peer, reason in attacked["rejections"]:
        reasons.setdefault(peer, set()).add(reason)
    print(f"{args.peers} honest peers, {args.windows} windows x {args.window_seconds}s, preset {args.preset}")
    print(f"final eval loss: attacked {attacked['final_eval_loss']:.4f}, honest alone {alone['final_eval_loss']:.4f}"
          f" (ratio {ratio:.3f}); adversary appearances in gather lists after warm-up: "
          f"{attacked['adversaries_in_gather_after_warmup']}")
    print(f"{'rank':>4}  {'peer':<24}{'kind':<18}{'final score':>12}{'weight':>8}{'in gather':>10}  rejections")
    rows = []
    for r in attacked["ranking"]:
        rej = ", ".join(sorted(reasons.get(r["id"], set()))) or "-"
        print(f"{r['rank']:>4}  {r['name']:<24}{r['kind']:<18}{r['final_score']:>12.3f}{r['weight']:>8.3f}"
              f"{r['windows_in_gather']:>10}  {rej}")
        rows.append(r | {"rejections": sorted(reasons.get(r["id"], set()))})
    args.out.write_text(json.dumps({
        "args": {k: str(v) for k, v in vars(args).items()},
        "attacked_final_eval_loss": attacked["final_eval_loss"],
        "honest_final_eval_loss": alone["final_eval_loss"],
        "loss_ratio": ratio,
        "adversaries_in_gather_after_warmup": attacked["adversaries_in_gather_after_warmup"],
        "ranking": rows,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
