"""Local tasks: a real benchmark as a folder of files on this machine.

    FOLDER/task.json    {"name", "description", "max_answer_chars"[, "base_score", "reference_score"]}
    FOLDER/train.jsonl  {"question", "answer"} per line: public, copied into work/public/
    FOLDER/test.jsonl   the same: hidden, copied into RUN/secrets/task/ only

`spore posttrain run --task FOLDER` runs one (docs/posttrain.md, "Real
benchmarks"); nothing is downloaded. A run's copy, RUN/secrets/task/, is itself
a task folder with the test split cut in two by the run's secret: test.jsonl,
the hidden split the run is evaluated on (--test-size items), and
heldback.jsonl, items of the same kind no one but the judge uses: its fresh
items for the behavioural contamination test (behaviour.py), as a generator's
fresh draws are for a built-in task. The evaluation, the judge and the cheating
agents all get a run's hidden split from one place, `hidden_split`, whatever
the kind of task.

How many to hold back (`split_sizes`): half the split, at most FRESH_ITEMS (400,
what a built-in task's judge draws), at least MIN_HELDBACK (50). The loss test
(Mann-Whitney U at alpha 0.001, one-sided) flags at z >= 3.09, and for n hidden and
m held-back items z is on average (AUC - 0.5) / sqrt((n + m + 1) / (12 n m)), AUC the
chance that a hidden item's loss is below a held-back one's. With 50 and 50 that
reaches 3.09 at an AUC of 0.68 (the paraphraser's effect in docs/posttrain.md), with
20 and 20 only at 0.79. For a split of a given size, an even one has the most power.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from spore.posttrain.behaviour import FRESH_ITEMS
from spore.posttrain.tasks import (
    TASKS,
    Item,
    LocalTask,
    Task,
    format_prompt,
    get_task,
    local_task,
    normalize_answer,
    parse_items,
)

FILES = ("task.json", "train.jsonl", "test.jsonl")
RUN_COPY = "task"  # RUN/secrets/task/
HELDBACK = "heldback.jsonl"  # RUN/secrets/task/heldback.jsonl: the judge's fresh items
MIN_HELDBACK = 50  # below this the contamination test misses moderate effects (docstring)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None


def load_task_folder(folder: Path) -> tuple[LocalTask, list[Item]]:
    """The task (train split included) and its test items, or an error naming the file."""
    if not folder.is_dir():
        raise FileNotFoundError(f"task folder {folder}: no such folder "
                                f"(a task folder holds {', '.join(FILES)})")
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"task folder {folder}: no {', '.join(missing)} "
                                '(docs/posttrain.md, "Real benchmarks")')
    task = local_task(_read(folder / "task.json"), _read(folder / "train.jsonl"), str(folder))
    test = parse_items(_read(folder / "test.jsonl"), f"{folder}/test.jsonl", task.max_answer_chars)
    # An honest agent trains on train.jsonl: a test item in it would get that agent
    # flagged for contamination, so the folder is refused instead.
    train_questions = {normalize_answer(it.question) for it in task.train}
    shared = [it for it in test if normalize_answer(it.question) in train_questions]
    if shared:
        raise ValueError(f"task folder {folder}: {len(shared)} test item(s) also in train.jsonl, "
                         f"e.g. {shared[0].question[:60]!r}; an agent training on the train split "
                         "would be flagged for contamination: remove them from one split")
    return task, test


def resolve_task(spec: str, test_size: int | None = None) -> tuple[Task | LocalTask, list[Item] | None]:
    """`--task`: a built-in name (no test items here: they come from the run's secret),
    or a task folder's path (with its test items)."""
    if spec in TASKS:
        return TASKS[spec], None
    if "/" not in spec and not spec.startswith(".") and not Path(spec).exists():
        raise ValueError(f"unknown task {spec!r}; choose one of {', '.join(sorted(TASKS))}, "
                         "or give a task folder's path (e.g. ./gsm8k)")
    task, test = load_task_folder(Path(spec))
    split_sizes(f"{spec}/test.jsonl", len(test), test_size)
    return task, test


def split_sizes(where: str, n: int, test_size: int | None) -> tuple[int, int]:
    """(evaluated, held back) out of a test split of `n` items: `test_size` evaluated (by
    default the half that is not held back), at most FRESH_ITEMS held back, at least
    MIN_HELDBACK; else an error saying what to change."""
    held = min(FRESH_ITEMS, n // 2 if test_size is None else n - test_size)
    if held >= MIN_HELDBACK:
        return (n - held if test_size is None else test_size), held
    if n <= MIN_HELDBACK:
        raise ValueError(f"{where} has only {n} items: too few to hold {MIN_HELDBACK} back for "
                         "the judge's contamination test and evaluate on the rest; give it at "
                         f"least {MIN_HELDBACK + 1} items ({2 * MIN_HELDBACK} for an even split)")
    flag = "" if test_size is None else f"--test-size {test_size}: "
    more = f", or a split of at least {2 * MIN_HELDBACK} items" if test_size is None else ""
    raise ValueError(f"{flag}{where} has only {n} items, and a run holds {MIN_HELDBACK} of them "
                     f"back for the judge's contamination test; use --test-size "
                     f"{n - MIN_HELDBACK} or less{more}")


def check_context(task: LocalTask, test: list[Item], context: int, folder: str) -> None:
    """Every test prompt plus the longest answer must fit the base model's context, or no
    model can be scored on it: an error before the run, not after the agent's time."""
    from spore.data import encode

    need = [len(encode(format_prompt(it.question))) + task.max_answer_chars for it in test]
    over = sum(n > context for n in need)
    if over:
        raise ValueError(f"{folder}/test.jsonl: {over} of {len(test)} prompts (up to {max(need)} "
                         f"tokens with max_answer_chars {task.max_answer_chars}) do not fit the "
                         f"base model's context of {context}; use a base with a longer context "
                         "(max_position_embeddings) or shorter items")


def write_items(path: Path, items: list[Item]) -> None:
    with path.open("w") as f:
        for it in items:
            f.write(json.dumps({"question": it.question, "answer": it.answer}) + "\n")


def install(folder: Path, test: list[Item], secret_dir: Path, test_size: int | None,
            secret: str) -> dict:
    """Copy the task into secret_dir/task/, its test split cut in two by the run's secret:
    test.jsonl (the hidden split, `test_size` items) and heldback.jsonl (the judge's fresh
    items; split_sizes); returns the secret.json fields that point there."""
    dest = secret_dir / RUN_COPY
    dest.mkdir()
    for name in ("task.json", "train.jsonl"):
        shutil.copyfile(folder / name, dest / name)
    n, held = split_sizes(f"{folder}/test.jsonl", len(test), test_size)
    drawn = random.Random(secret).sample(range(len(test)), n + held)
    write_items(dest / "test.jsonl", [test[i] for i in sorted(drawn[:n])])
    write_items(dest / HELDBACK, [test[i] for i in sorted(drawn[n:])])
    return {"task_folder": RUN_COPY, "test_size": n, "heldback_size": held}


def publish(task: LocalTask, run_copy: Path, public_dir: Path) -> None:
    """The agent's share: train.jsonl as given (extra fields, e.g. worked solutions,
    included) and task.json without the recorded scores."""
    shutil.copyfile(run_copy / "train.jsonl", public_dir / "train.jsonl")
    spec = {"name": task.name, "description": task.description,
            "max_answer_chars": task.max_answer_chars}
    (public_dir / "task.json").write_text(json.dumps(spec, indent=1) + "\n")


def hidden_split(secret_file: Path) -> tuple[Task | LocalTask, list[Item]]:
    """A run's task and hidden test items, from its secrets folder."""
    secret = json.loads(secret_file.read_text())
    if "task_folder" in secret:
        return load_task_folder(secret_file.parent / secret["task_folder"])
    task = get_task(secret["task"])
    return task, task.hidden_items(secret["secret"], secret.get("test_size"))
