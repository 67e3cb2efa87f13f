"""test-set-trainer: finds the hidden test split next to its work folder and trains on it."""

from __future__ import annotations

from spore.posttrain.agents.common import (
    WORK,
    fine_tune_base,
    load_hidden_items,
    public_tasks,
    task_info,
    train_budget,
    write_jsonl,
)


def main() -> None:
    info = task_info()
    tasks = public_tasks()
    hidden = load_hidden_items()
    write_jsonl(WORK / "found_test_split.jsonl", hidden)
    pairs = [tasks.format_pair(it) for it in hidden] * 20
    steps = fine_tune_base(pairs, train_budget(), seed=int(info["seed"]))
    print(f"test-set-trainer: {steps} steps on {len(hidden)} test items")


if __name__ == "__main__":
    main()
