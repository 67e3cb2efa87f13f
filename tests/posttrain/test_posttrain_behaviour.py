"""Contamination judged by behaviour (behaviour.py): the statistics as tables, then
real small models: one trained on reworded hidden items is caught, honest ones are not."""

from __future__ import annotations

import random

import pytest

from spore.model import ModelConfig, build_model
from spore.posttrain import behaviour
from spore.posttrain.agents.common import sft
from spore.posttrain.agents.paraphraser import reword
from spore.posttrain.tasks import format_pair, get_task

R = random.Random(0)
SAME = [R.gauss(0, 1) for _ in range(300)]

# (name, x, y, the p-value must be: "small" < ALPHA, "large" > 0.05)
MANN_WHITNEY = [
    ("x clearly smaller", [v - 1.5 for v in SAME[:60]], SAME[60:], "small"),
    ("one distribution", SAME[:60], SAME[60:], "large"),
    ("x larger (one-sided)", [v + 1.5 for v in SAME[:60]], SAME[60:], "large"),
    ("all tied", [1.0] * 40, [1.0] * 200, "large"),
    ("empty sample", [], SAME, "large"),
]
TWO_PROPORTIONS = [  # (name, k1, n1, k2, n2, expected)
    ("hidden all right, fresh a fifth", 40, 40, 80, 400, "small"),
    ("equal rates", 10, 40, 100, 400, "large"),
    ("hidden worse (one-sided)", 2, 40, 200, 400, "large"),
    ("nothing right anywhere", 0, 40, 0, 400, "large"),
    ("everything right everywhere", 40, 40, 400, 400, "large"),
]


def _is(p: float, expected: str) -> bool:
    return p < behaviour.ALPHA if expected == "small" else p > 0.05


@pytest.mark.parametrize(("name", "x", "y", "expected"), MANN_WHITNEY, ids=[c[0] for c in MANN_WHITNEY])
def test_mann_whitney_one_sided(name, x, y, expected):
    assert _is(behaviour.mann_whitney_less(x, y), expected)


@pytest.mark.parametrize(("name", "k1", "n1", "k2", "n2", "expected"), TWO_PROPORTIONS,
                         ids=[c[0] for c in TWO_PROPORTIONS])
def test_two_proportions_one_sided(name, k1, n1, k2, n2, expected):
    assert _is(behaviour.two_proportion_greater(k1, n1, k2, n2), expected)


def test_under_the_honest_hypothesis_the_tests_rarely_fire():
    """Hidden and fresh as two samples of one distribution: false positives ~ alpha."""
    rng = random.Random(1)
    fired = 0
    for _ in range(400):
        x = [rng.expovariate(1) for _ in range(40)]
        y = [rng.expovariate(1) for _ in range(400)]
        fired += behaviour.mann_whitney_less(x, y) < 0.05
    assert 0.02 < fired / 400 < 0.09  # nominal 0.05


def test_fresh_items_are_private_to_the_judge():
    s = "0123abcd"
    assert behaviour.fresh_secret(s) != s and behaviour.fresh_secret(s) == behaviour.fresh_secret(s)
    task = get_task("uppercase")
    hidden = {it.question for it in task.hidden_items(s, 200)}
    assert not hidden & {it.question for it in task.hidden_items(behaviour.fresh_secret(s), 400)}


TASK = get_task("json_field")
HIDDEN = TASK.hidden_items("behaviour-test", 40)
FRESH = TASK.hidden_items(behaviour.fresh_secret("behaviour-test"), behaviour.FRESH_ITEMS)
TINY = ModelConfig(hidden=64, layers=1, intermediate=128, heads=1, context=128)


def trained(pairs, steps: int, seed: int):
    model = build_model(TINY)
    sft(model, pairs, budget_s=1e9, max_steps=steps, seed=seed, lr=3e-3)
    return model


def judged(model) -> behaviour.Comparison:
    return behaviour.compare(behaviour.answer_scores(model, HIDDEN, TASK.max_answer_chars),
                             behaviour.answer_scores(model, FRESH, TASK.max_answer_chars))


def test_exact_match_agrees_with_greedy_decoding():
    from spore.posttrain.evaluate import generate_answers
    from spore.posttrain.tasks import exact_match, format_prompt

    model = trained([format_pair(it) for it in TASK.public_items(2000)], 80, seed=0)
    items = FRESH[:64]
    scores = behaviour.answer_scores(model, items, TASK.max_answer_chars)
    greedy = generate_answers(model, [format_prompt(it.question) for it in items],
                              TASK.max_answer_chars)
    agree = sum(m == exact_match(g, it.answer)
                for m, g, it in zip(scores.match, greedy, items, strict=True))
    assert agree >= len(items) - 2  # left vs right padding may flip a near tie


def test_a_model_trained_on_reworded_hidden_items_is_caught_and_honest_ones_are_not():
    public = [format_pair(it) for it in TASK.public_items(2000, "honest")]
    reworded = [format_pair(type(it)(reword("json_field", it.question), it.answer)) for it in HIDDEN]
    cheat = judged(trained(reworded * 10 + public, 300, seed=0))
    assert cheat.flagged, cheat
    for seed in (0,):
        honest = judged(trained(public, 300, seed=seed))
        assert not honest.flagged, honest
