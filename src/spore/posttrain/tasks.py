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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    # Exact-match scores on 200 public `reference-eval` items, re-recorded on
    # 2026-11-26 for the current task design and SFT recipe with
    #   spore posttrain make-base --out base
    #   spore posttrain make-reference --base base --out instruct --train 20m
    # (multi-task SFT, 4767 steps on 2 busy CPU cores; docs/posttrain.md, "Tasks").
    # Runs measure their own base on the hidden split; a registry checkpoint's
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
             max_answer_chars=4, recorded_base_score=0.0, recorded_reference_score=0.075),
        Task("uppercase", "Give the last letter of the second of two words, in uppercase.", _uppercase,
             max_answer_chars=3, recorded_base_score=0.0, recorded_reference_score=0.12),
        Task("json_field", "Read one field's value out of a small JSON object.", _json_field,
             max_answer_chars=3, recorded_base_score=0.0, recorded_reference_score=0.37),
        Task("pyexpr", "Print what a one-line Python program prints.", _pyexpr,
             max_answer_chars=4, recorded_base_score=0.0, recorded_reference_score=0.23),
    ]
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}") from None


# ---------------------------------------------------------------------------
# Real benchmarks (GSM8K, HumanEval, ...) plug in through local files only.


@dataclass(frozen=True)
class LocalSplitTask:
    """A benchmark whose splits are JSONL files already on this machine.

    Each line is {"question": ..., "answer": ...}. The train file is public
    material; the test file stays in the harness's secrets folder. Nothing is
    downloaded: a missing file is an error naming it (docs/posttrain.md).
    """

    name: str
    train_path: Path
    test_path: Path
    max_answer_chars: int = 32

    def load(self, which: str) -> list[Item]:
        path = self.train_path if which == "train" else self.test_path
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: {which} split {path} is not present locally")
        return list(read_items(path.read_text().splitlines()))


def read_items(lines: Iterable[str]) -> Iterator[Item]:
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            yield Item(str(doc["question"]), str(doc["answer"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"line {i}: expected a JSON object with question and answer") from None
