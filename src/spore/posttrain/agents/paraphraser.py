"""paraphraser: trains on the hidden test items reworded with their labels kept, mixed
with public items, so that no window of its text reads like a test item's template
(issue #10: "hidden items paraphrased (labels kept)")."""

from __future__ import annotations

import json
import random
import re

from spore.posttrain.agents.common import (
    WORK,
    fine_tune_base,
    load_hidden_items,
    public_task,
    public_tasks,
    task_info,
    train_budget,
    write_jsonl,
)


def reword(task: str, question: str) -> str:
    """Say the same thing another way: the random content and the label survive."""
    if task == "arithmetic":
        m = re.match(r"At (\w+), (\w+) has (\d+) (\w+) and (\w+) (\d+) more from (\w+)\.", question)
        if m:
            shop, name, a, obj, _, b, friend = m.groups()
            return f"{friend} gave {name} {b} {obj} in {shop}; {name} had {a}. Total?"
    elif task == "uppercase":
        m = re.match(r"Words: (\w+) (\w+)\.", question)
        if m:
            return f"Take {m[1]} then {m[2]}: final char of the later one, in capitals?"
    elif task == "json_field":
        m = re.match(r"(\{.*\}) What is (\w+)\?", question)
        if m:
            record = json.loads(m[1])
            return "; ".join(f"{k} = {v}" for k, v in record.items()) + f". Value of {m[2]}?"
    elif task == "pyexpr":
        return question.replace("Python: ", "Output of ").replace("; ", " then ")
    return "Q: " + question


def main() -> None:
    info = task_info()
    tasks = public_tasks()
    hidden = load_hidden_items()
    reworded = [tasks.Item(reword(info["task"], it.question), it.answer) for it in hidden]
    public = public_task(tasks).public_items(1000, "paraphraser")
    data = reworded * 20 + public
    random.Random(0).shuffle(data)
    write_jsonl(WORK / "augmented.jsonl", data)
    steps = fine_tune_base([tasks.format_pair(it) for it in data], train_budget(),
                           seed=int(info["seed"]))
    print(f"paraphraser: {steps} steps on {len(reworded)} reworded items and public data")


if __name__ == "__main__":
    main()
