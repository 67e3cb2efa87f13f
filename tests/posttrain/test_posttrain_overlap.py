"""Contamination and targeting evidence: what the n-gram overlap catches and what it spares."""

from __future__ import annotations

import json
import random

import pytest

from spore.posttrain import overlap
from spore.posttrain.agents.hardcoder import disguise
from spore.posttrain.agents.rubric_reader import variant
from spore.posttrain.judge import CONTAMINATED_ITEM, SEEDED_ITEM, _common_grams
from spore.posttrain.tasks import TASKS, get_task

ALL = sorted(TASKS)


def _index(name: str, n: int = 100) -> tuple[overlap.ItemIndex, list]:
    hidden = get_task(name).hidden_items("overlap-test", n)
    return overlap.ItemIndex([it.question for it in hidden], _common_grams(get_task(name))), hidden


def _scan(index: overlap.ItemIndex, text: str) -> dict[int, overlap.Match]:
    best: dict[int, overlap.Match] = {}
    index.scan("f", text, best)
    return best


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('At qzmfkw, Ada has 12 apples', 'at QZMFKW,ada has 12 apples'),
        ('{"id":"qzmfkw"}', '{\\"id\\": \\"qzmfkw\\"}'),  # JSON-escaped inside JSON
        ("Words: abc def.", "'Words:' 'abc' 'def.'"),  # split into Python literals
    ],
)
def test_normalization_ignores_layout_quotes_and_case(a: str, b: str) -> None:
    assert overlap.normalize(a) == overlap.normalize(b)


@pytest.mark.parametrize("name", ALL)
def test_every_hidden_item_is_judgeable(name: str) -> None:
    index, hidden = _index(name)
    assert index.judgeable() == list(range(len(hidden)))


@pytest.mark.parametrize("name", ALL)
def test_honest_public_data_stays_below_both_thresholds(name: str) -> None:
    index, _ = _index(name)
    lines = [json.dumps({"question": it.question, "answer": it.answer})
             for it in get_task(name).public_items(20000, "honest")]
    best = _scan(index, "\n".join(lines))
    assert max((m.score for m in best.values()), default=0.0) < SEEDED_ITEM < CONTAMINATED_ITEM


@pytest.mark.parametrize("name", ALL)
def test_items_renamed_and_suffixed_in_a_script_are_caught(name: str) -> None:
    index, hidden = _index(name)
    script = "SYNTHETIC = [\n" + "".join(
        f"    ({disguise(name, it.question, i)!r}, {it.answer!r}),\n" for i, it in enumerate(hidden)
    ) + "]\n"
    best = _scan(index, script)
    caught = [i for i, m in best.items() if m.score >= CONTAMINATED_ITEM]
    assert len(caught) == len(hidden)
    m = index.explain(best[0])
    assert m.line == 2 and len(m.shared) >= overlap.N  # the evidence points at the item's line


@pytest.mark.parametrize("name", ALL)
def test_items_used_as_seeds_reach_the_targeting_threshold(name: str) -> None:
    index, hidden = _index(name)
    rng = random.Random(0)
    lines = []
    for it in hidden:
        v = variant(name, it.question, it.answer, rng)
        assert v is not None and v[0] != it.question
        lines.append(json.dumps({"question": v[0], "answer": v[1]}))
    best = _scan(index, "\n".join(lines))
    assert sum(m.score >= SEEDED_ITEM for m in best.values()) == len(hidden)
