"""Tasks: what an agent must teach the model, and how the harness grades it.

A task is a plugin with a description, a public item generator, a hidden
test split drawn from a secret seed, a scorer (exact match after
normalization) and two recorded scores: the base model's zero-shot score and
a reference score (docs/posttrain.md, "Tasks", says how they were measured).

This module is pure: no files, no processes. It is also the *public* material:
a copy sits in every work folder so the agent can generate training data and
self-check, which is safe because the hidden split depends on a secret seed
that never enters the work folder, not on anything written here.

Items are drawn from spaces of 2^40 or more, so an honest generator of a
million items meets a given hidden item by chance with probability under
10^-6 (the contamination check relies on this).

A real benchmark is a `LocalTask`: a folder with fixed train and test splits
(parsed and validated here from the files' text; taskfolder.py does the files).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# The prompt template ("chat template") shared by training and evaluation.
# The evaluation always uses this pristine copy; the work folder gets a copy
# in eval/template.json whose tampering the judge detects.
TEMPLATE = {"prompt": "{question}\nA: ", "stop": "\n"}


@dataclass(frozen=True)
class Item:
    question: str
    answer: str


def format_prompt(question: str, template: dict[str, str] = TEMPLATE) -> str:
    return template["prompt"].format(question=question)


def format_pair(item: Item, template: dict[str, str] = TEMPLATE) -> tuple[str, str]:
    """One training example: (prompt, completion), the completion ending in the stop string."""
    return format_prompt(item.question, template), item.answer + template["stop"]


def normalize_answer(text: str) -> str:
    """Whitespace-insensitive, case-sensitive (the uppercase task depends on case)."""
    return " ".join(text.split())


def exact_match(prediction: str, answer: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(answer)


def score(predictions: list[str], items: list[Item]) -> float:
    """Share of items answered exactly (after normalization)."""
    if len(predictions) != len(items):
        raise ValueError(f"{len(predictions)} predictions for {len(items)} items")
    if not items:
        raise ValueError("no items to score")
    return sum(exact_match(p, it.answer) for p, it in zip(predictions, items, strict=True)) / len(items)


# ---------------------------------------------------------------------------
# Seeds: the public stream and the hidden split never share a seed domain.


def _rng(domain: str, task: str, seed: str) -> random.Random:
    h = hashlib.sha256(f"spore/posttrain/{domain}/v1\0{task}\0{seed}".encode()).digest()
    return random.Random(int.from_bytes(h, "big"))


# ---------------------------------------------------------------------------
# The built-in generators


_NAMES = ["Ada", "Bruno", "Chen", "Dara", "Emil", "Farah", "Gus", "Hana", "Ivo", "Jun",
          "Kemal", "Lena", "Milo", "Nia", "Oren", "Pia", "Quinn", "Rosa", "Sami", "Tove"]
_OBJECTS = ["apples", "stamps", "coins", "books", "shells", "marbles", "cards", "pens",
            "beads", "bolts"]
_VERBS = ["buys", "finds", "gets", "wins", "receives", "collects"]
_KEYS = ["pet", "tag", "city", "size", "age", "room"]


def _word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))


# Every item carries two random words of 5+ letters (>= 47 bits together)
# besides the values its answer depends on: the model learns to ignore them,
# and they are what makes a copied test item recognizable (overlap.py), even
# when some of its text was renamed.


def _arithmetic(rng: random.Random) -> Item:
    shop, friend = _word(rng, 5, 7), _word(rng, 5, 7).capitalize()
    name, obj, verb = rng.choice(_NAMES), rng.choice(_OBJECTS), rng.choice(_VERBS)
    a, b = rng.randint(10, 49), rng.randint(1, 9)
    q = f"At {shop}, {name} has {a} {obj} and {verb} {b} more from {friend}. How many now?"
    return Item(q, str(a + b))


def _uppercase(rng: random.Random) -> Item:
    first, second = _word(rng, 5, 7), _word(rng, 5, 7)
    return Item(f"Words: {first} {second}. Last letter of the second, uppercase?",
                second[-1].upper())


def _json_field(rng: random.Random) -> Item:
    keys = rng.sample(_KEYS, 3)
    record: dict[str, object] = {k: rng.randint(0, 9) for k in keys}
    record["id"] = _word(rng, 5, 7)
    record["note"] = _word(rng, 5, 7)
    items = list(record.items())
    rng.shuffle(items)
    want = rng.choice(keys)
    doc = json.dumps(dict(items), separators=(",", ":"))
    return Item(f"{doc} What is {want}?", str(record[want]))


def _pyexpr(rng: random.Random) -> Item:
    v, tag = _word(rng, 5, 7), _word(rng, 5, 7)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    code = rng.choice([f"print({v} + {b})", f"print({v} - {b})", f"print({v} * {b})",
                       f"print(max({v}, {b}))", f"print(min({v}, {b}))"])
    code = f"{v} = {a}; {code}  # {tag}"
    # Running our own generated code (literals only) is how the label is made.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {"__builtins__": {"print": print, "max": max, "min": min}})
    return Item(f"Python: {code}", out.getvalue().strip())


# ---------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True)
class Task:
    """A task plugin. `make` draws one item from an rng; everything else is derived."""

    name: str
    description: str
    make: Callable[[random.Random], Item]
    max_answer_chars: int
    # Exact-match scores on 200 public `reference-eval` items, recorded on
    # 2026-11-26 for the current task design and SFT recipe with
    #   spore posttrain make-base --out base
    #   spore posttrain make-reference --base base --out instruct --jobs 2
    # (a model per task, 6000 SFT steps each; arithmetic's is the best of 2 seeds,
    # `--task arithmetic --seeds 2`: seed 0 scored 0.13, seed 1 1.0; docs/posttrain.md, "Tasks").
    # Runs measure their own base on the hidden split; a registry's
    # reference.json overrides the reference score.
    recorded_base_score: float
    recorded_reference_score: float
    test_size: int = 200

    def public_items(self, n: int, seed: str = "0") -> list[Item]:
        """The public training stream: anyone may draw as many as they like."""
        rng = _rng("public", self.name, seed)
        return [self.make(rng) for _ in range(n)]

    def public_stream(self, seed: str = "0") -> Iterator[Item]:
        rng = _rng("public", self.name, seed)
        while True:
            yield self.make(rng)

    def hidden_items(self, secret: str, n: int | None = None) -> list[Item]:
        """The hidden test split: a function of the secret seed alone."""
        rng = _rng("hidden", self.name, secret)
        return [self.make(rng) for _ in range(self.test_size if n is None else n)]


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("arithmetic", "Add the two numbers of a short word problem.", _arithmetic,
             max_answer_chars=4, recorded_base_score=0.0, recorded_reference_score=1.0),
        Task("uppercase", "Give the last letter of the second of two words, in uppercase.", _uppercase,
             max_answer_chars=3, recorded_base_score=0.0, recorded_reference_score=0.69),
        Task("json_field", "Read one field's value out of a small JSON object.", _json_field,
             max_answer_chars=3, recorded_base_score=0.0, recorded_reference_score=0.385),
        Task("pyexpr", "Print what a one-line Python program prints.", _pyexpr,
             max_answer_chars=4, recorded_base_score=0.0, recorded_reference_score=0.775),
    ]
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}") from None


# ---------------------------------------------------------------------------
# Real benchmarks (GSM8K, ...): a task folder with fixed splits on this machine
# (docs/posttrain.md, "Real benchmarks"). Parsed here from the files' text, so
# the harness (taskfolder.py), the work folder's self-check and the agents all
# read a folder the same way, and every problem is an error naming file and line.

TASK_FOLDER_KEYS = ("name", "description", "max_answer_chars", "base_score", "reference_score")
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@dataclass(frozen=True)
class LocalTask:
    """A benchmark with fixed splits, in the shape of a Task where a run needs one.

    Its public items are the train split, in file order. The test split is not
    part of it: the harness keeps that in the run's secrets folder. The recorded
    scores come from task.json; the reference score has no default (a registry's
    reference.json may supply one)."""

    name: str
    description: str
    max_answer_chars: int
    train: tuple[Item, ...]
    recorded_base_score: float = 0.0
    recorded_reference_score: float | None = None

    def public_items(self, n: int, seed: str = "0") -> list[Item]:
        """The train split's first n items (a fixed split has one order: the seed is unused)."""
        return list(self.train[:n])


def parse_items(text: str, source: str, max_answer_chars: int) -> list[Item]:
    """JSONL lines {"question": str, "answer": str}; blank lines are skipped."""
    items = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source} line {i}"
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg}, column {e.colno})") from None
        if not (isinstance(doc, dict) and isinstance(doc.get("question"), str)
                and isinstance(doc.get("answer"), str)):
            raise ValueError(f'{where}: expected {{"question": "...", "answer": "..."}} '
                             '(both strings: write 42 as "42")')
        question, answer = doc["question"], doc["answer"]
        if not question.strip() or not normalize_answer(answer):
            raise ValueError(f"{where}: empty question or answer")
        if "\n" in answer:
            raise ValueError(f"{where}: the answer spans lines; the template stops at a newline")
        # The model writes byte tokens: UTF-8 bytes, not characters, bound what it can answer.
        if len(answer.encode()) > max_answer_chars:
            raise ValueError(f"{where}: answer {answer[:40]!r} is {len(answer.encode())} bytes, "
                             f"more than max_answer_chars {max_answer_chars} (the most the "
                             "model may write); raise max_answer_chars in task.json")
        items.append(Item(question, answer))
    if not items:
        raise ValueError(f"{source}: no items (an empty split cannot train or score)")
    return items


def parse_task_spec(text: str, source: str) -> dict:
    """task.json: {"name", "description", "max_answer_chars"[, "base_score", "reference_score"]}."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a JSON object with {', '.join(TASK_FOLDER_KEYS[:3])}")
    unknown = sorted(set(spec) - set(TASK_FOLDER_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(TASK_FOLDER_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
        raise ValueError(f"{source}: name {name!r} must be 1-40 letters, digits, '_', '.' or '-'")
    if name in TASKS:
        raise ValueError(f"{source}: name {name!r} is a built-in task's; choose another name")
    if not isinstance(spec.get("description"), str) or not spec["description"].strip():
        raise ValueError(f"{source}: description must be a non-empty string (the agent reads it)")
    chars = spec.get("max_answer_chars")
    if not isinstance(chars, int) or isinstance(chars, bool) or chars < 1:
        raise ValueError(f"{source}: max_answer_chars must be a positive integer, got {chars!r}")
    for key in ("base_score", "reference_score"):
        v = spec.get(key, 0.0)
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{source}: {key} must be a number from 0 to 1, got {v!r}")
    if "reference_score" in spec and spec["reference_score"] <= spec.get("base_score", 0.0):
        raise ValueError(f"{source}: reference_score {spec['reference_score']} is not above "
                         f"base_score {spec.get('base_score', 0.0)}; a task's weight is "
                         "1/(reference - base)")
    return spec


def local_task(spec_text: str, train_text: str, source: str) -> LocalTask:
    """A task folder's task.json and train.jsonl (their text), validated."""
    spec = parse_task_spec(spec_text, f"{source}/task.json")
    train = parse_items(train_text, f"{source}/train.jsonl", spec["max_answer_chars"])
    ref = spec.get("reference_score")
    return LocalTask(spec["name"], spec["description"], spec["max_answer_chars"], tuple(train),
                     float(spec.get("base_score", 0.0)), None if ref is None else float(ref))
