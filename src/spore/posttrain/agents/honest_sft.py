"""honest-sft: fine-tune the base model on the public generator (or train split), nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

from spore.posttrain.agents.common import (
    WORK,
    fine_tune_base,
    public_task,
    public_tasks,
    task_info,
    time_left,
    train_budget,
    write_jsonl,
)

TRAIN_ITEMS = 20000


def main() -> None:
    info = task_info()
    tasks = public_tasks()
    task = public_task(tasks)
    template = json.loads((WORK / "eval" / "template.json").read_text())
    items = task.public_items(TRAIN_ITEMS, f"honest-sft-{info['seed']}")
    write_jsonl(WORK / "train.jsonl", items)
    # Train for ~85% of the time left: saving this model takes about a second.
    steps = fine_tune_base([tasks.format_pair(it, template) for it in items],
                           train_budget(margin=0.15), seed=int(info["seed"]))
    print(f"honest-sft: {steps} steps on {len(items)} public items")
    if time_left() > 6:  # what a careful agent does: the self-check it was given
        try:
            check = subprocess.run([sys.executable, "eval/evaluate.py", "--model", "final_model",
                                    "--limit", "20"], capture_output=True, text=True, cwd=WORK,
                                   timeout=time_left() - 2)
            print("self-check:", check.stdout.strip() or check.stderr.strip()[-300:])
        except subprocess.TimeoutExpired:
            print("self-check: no time left")


if __name__ == "__main__":
    main()
