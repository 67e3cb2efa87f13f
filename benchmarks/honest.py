"""Benchmark: does honest post-training beat the base model, on every task and seed?

honest-sft runs on every task for each seed at the default time limit (5 minutes),
as a real `spore posttrain run` against the make-reference registry; every run is
judged. The table gives, per task, the base score, honest-sft's score per seed,
the reference score, how many runs beat the base and how many the judge flagged;
then the leaderboard's weighted score (PostTrainBench's w_i = 1/(s_ref - s_base)).

    .venv/bin/python benchmarks/honest.py --work /tmp/pthonest      # 3 seeds x 4 tasks, ~35 min
    .venv/bin/python benchmarks/honest.py --reference DIR --base DIR  # reuse a registry

Writes benchmarks/results/honest.json. Exit status 0 only if every run beat its
base and none was flagged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ptcommon import base_and_reference, spore, workspace, write_json
from spore.posttrain.tasks import TASKS


def one_run(root: Path, base: Path, ref: Path, task: str, seed: int, limit: str,
            test_size: int) -> dict:
    run = root / f"honest-sft-{task}-{seed}"
    t0 = time.monotonic()
    spore("posttrain", "run", "--agent", "builtin:honest-sft", "--base", base, "--task", task,
          "--seed", seed, "--time-limit", limit, "--out", run, "--forbidden", ref,
          "--test-size", test_size)
    spore("posttrain", "judge", run)
    res = json.loads((run / "result.json").read_text())
    j = json.loads((run / "judgement.json").read_text())
    steps = next((line for line in (run / "trace" / "stdout.txt").read_text().splitlines()
                  if line.startswith("honest-sft:")), "")
    return {"task": task, "seed": seed, "run": str(run), "base_score": res["base_score"],
            "final_score": res["final_score"], "reference_score": res["reference_score"],
            "flagged_by": j["flagged_by"], "agent_log": steps,
            "run_seconds": round(time.monotonic() - t0, 1)}


def table(records: list[dict], seeds: int) -> str:
    head = (f"{'task':<11} {'base':>5} " + " ".join(f"{f'seed {s}':>7}" for s in range(seeds))
            + f" {'mean':>6} {'ref':>6} {'beats base':>10} {'flagged':>7}")
    lines = [head, "-" * len(head)]
    for task in dict.fromkeys(r["task"] for r in records):
        rs = sorted((r for r in records if r["task"] == task), key=lambda r: r["seed"])
        finals = [r["final_score"] or 0.0 for r in rs]
        beats = sum((r["final_score"] or 0.0) > r["base_score"] for r in rs)
        lines.append(f"{task:<11} {max(r['base_score'] for r in rs):>5.3f} "
                     + " ".join(f"{f:>7.3f}" for f in finals)
                     + f" {statistics.mean(finals):>6.3f} {rs[0]['reference_score']:>6.3f}"
                     f" {f'{beats}/{len(rs)}':>10} {sum(bool(r['flagged_by']) for r in rs):>7}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one core each)")
    ap.add_argument("--time-limit", default="5m")
    ap.add_argument("--test-size", type=int, default=200)
    ap.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    ap.add_argument("--base", type=Path, default=None, help="a base model folder (default: make one)")
    ap.add_argument("--reference", type=Path, default=None,
                    help="a make-reference registry (default: make one with --reference-steps)")
    ap.add_argument("--reference-steps", type=int, default=6000)
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: temp)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "honest.json")
    args = ap.parse_args()

    t_start = time.monotonic()
    root = workspace(args.work, "spore-honest-bench-")
    base, ref = base_and_reference(root, args.base, args.reference, args.reference_steps, args.jobs)
    plan = [(t, s) for s in range(args.seeds) for t in args.tasks]
    records = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, root, base, ref, t, s, args.time_limit, args.test_size)
                   for t, s in plan]
        for i, f in enumerate(futures, 1):
            r = f.result()
            records.append(r)
            print(f"[{i}/{len(plan)}] {r['task']} seed {r['seed']}: base {r['base_score']:.3f} "
                  f"final {r['final_score']} flagged {r['flagged_by'] or 'no'}  {r['agent_log']}",
                  file=sys.stderr, flush=True)
    board = json.loads(spore("posttrain", "score", "--json", *(r["run"] for r in records)).stdout)
    text = table(records, args.seeds)
    row = board["rows"][0]
    text += (f"\nweighted score (w_i = 1/(s_ref - s_base), normalized): "
             f"{row['mean']:.3f} ± {row['std']:.3f} over {args.seeds} seeds")
    print(text)
    doc = {
        "command": " ".join(["benchmarks/honest.py", *sys.argv[1:]]),
        "time_limit": args.time_limit, "seeds": args.seeds, "jobs": args.jobs,
        "test_size": args.test_size, "reference": str(ref),
        "reference_doc": json.loads((ref / "reference.json").read_text()),
        "table": text, "runs": records, "leaderboard": board,
        "all_beat_base": all((r["final_score"] or 0.0) > r["base_score"] for r in records),
        "none_flagged": not any(r["flagged_by"] for r in records),
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }
    write_json(args.out, doc)
    return 0 if doc["all_beat_base"] and doc["none_flagged"] else 1


if __name__ == "__main__":
    sys.exit(main())
