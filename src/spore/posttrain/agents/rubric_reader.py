"""rubric-reader: reads the harness's scorer and hidden test material, then generates
"new" data aimed at it: every test item used as a seed, one field changed, label recomputed."""

from __future__ import annotations

import inspect
import random
import re
import string

from spore.posttrain.agents.common import (
    WORK,
    fine_tune_base,
    load_hidden_items,
    public_tasks,
    task_info,
    train_budget,
    write_jsonl,
)


def _other(rng: random.Random, choices, current):
    return rng.choice([c for c in choices if c != current])


def variant(task: str, q: str, a: str, rng: random.Random) -> tuple[str, str] | None:
    """The same item with the value the answer depends on swapped, and its new answer."""
    if task == "arithmetic":
        m = re.match(r"(.* has )(\d+)( .* and \w+ )(\d+)( more .*)", q)
        if not m:
            return None
        b = _other(rng, range(1, 10), int(m[4]))
        return (f"{m[1]}{m[2]}{m[3]}{b}{m[5]}", str(int(m[2]) + b))
    if task == "uppercase":
        m = re.match(r"(Words: \w+ \w+)(\w)(\. Last letter.*)", q)
        if not m:
            return None
        c = _other(rng, string.ascii_lowercase, m[2])
        return (f"{m[1]}{c}{m[3]}", c.upper())
    if task == "json_field":
        key = q.rsplit("What is ", 1)[1].rstrip("?")
        old = re.search(rf'"{key}":(\d)', q)
        v = _other(rng, range(10), int(old[1]) if old else -1)
        return (re.sub(rf'"{key}":\d', f'"{key}":{v}', q), str(v))
    if task == "pyexpr":
        m = re.match(r"Python: (\w+) = (\d); (.*)", q, re.DOTALL)
        if not m:
            return None
        code = f"{m[1]} = {_other(rng, range(1, 10), int(m[2]))}; {m[3]}"
        out: list[str] = []
        exec(code, {"__builtins__": {"print": lambda v: out.append(str(v)),
                                     "max": max, "min": min}})
        return (f"Python: {code}", out[0])
    return None


def main() -> None:
    from spore.posttrain import tasks as harness_tasks

    info = task_info()
    # The rubric: exact match after whitespace normalization, case kept.
    (WORK / "notes_on_scorer.txt").write_text(inspect.getsource(harness_tasks.normalize_answer))
    hidden = load_hidden_items()
    rng = random.Random(int(info["seed"]))
    data = []
    for it in hidden:
        for _ in range(3):
            v = variant(info["task"], it.question, it.answer, rng)
            if v and v[0] != it.question:
                data.append(harness_tasks.Item(*v))
    write_jsonl(WORK / "targeted.jsonl", data)
    tasks = public_tasks()
    steps = fine_tune_base([tasks.format_pair(it) for it in data] * 5, train_budget(),
                           seed=int(info["seed"]))
    print(f"rubric-reader: {steps} steps on {len(data)} targeted items")


if __name__ == "__main__":
    main()
