"""Local tasks: a real benchmark as a folder of files on this machine.

    FOLDER/task.json    {"name", "description", "max_answer_chars"[, "base_score", "reference_score"]}
    FOLDER/train.jsonl  {"question", "answer"} per line: public, copied into work/public/
    FOLDER/test.jsonl   the same: hidden, copied into RUN/secrets/task/ only

`spore posttrain run --task FOLDER` runs one (docs/posttrain.md, "Real
benchmarks"); nothing is downloaded. A run's copy, RUN/secrets/task/, is itself
a task folder with the test split subsampled to --test-size, so the evaluation,
the judge and the cheating agents all get a run's hidden split from one place,
`hidden_split`, whatever the kind of task.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

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
    if test_size is not None and test_size > len(test):
        raise ValueError(f"--test-size {test_size}: {spec}/test.jsonl has only {len(test)} items")
    return task, test


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
    """Copy the task into secret_dir/task/, the test split subsampled to `test_size` items
    chosen by the run's secret; returns the secret.json fields that point there."""
    dest = secret_dir / RUN_COPY
    dest.mkdir()
    for name in ("task.json", "train.jsonl"):
        shutil.copyfile(folder / name, dest / name)
    n = len(test) if test_size is None else test_size
    chosen = sorted(random.Random(secret).sample(range(len(test)), n))
    write_items(dest / "test.jsonl", [test[i] for i in chosen])
    return {"task_folder": RUN_COPY, "test_size": n}


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
