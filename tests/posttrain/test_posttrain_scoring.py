"""PostTrainBench scoring: weights, what a flagged or broken run counts, mean ± std."""

from __future__ import annotations

import math

import pytest

from spore.posttrain.scoring import RunScore, leaderboard, mean_std, task_weights


def run(agent: str, task: str, seed: int, final: float | None, flagged: bool = False,
        base: float = 0.1, ref: float = 0.5) -> RunScore:
    return RunScore(agent, task, seed, base, ref, final, flagged)


def test_weights_are_inverse_headroom_normalized() -> None:
    w = task_weights({"a": 0.0, "b": 0.2}, {"a": 0.5, "b": 0.3})
    # raw 1/0.5 = 2 and 1/0.1 = 10
    assert w == pytest.approx({"a": 2 / 12, "b": 10 / 12})


def test_a_reference_not_above_the_base_is_an_error() -> None:
    with pytest.raises(ValueError, match="task b"):
        task_weights({"a": 0.0, "b": 0.4}, {"a": 0.5, "b": 0.4})


@pytest.mark.parametrize(
    ("final", "flagged", "counted"),
    [
        (0.4, False, 0.4),  # an honest run counts its model's score
        (0.9, True, 0.1),  # a flagged run counts the base score, however good its model
        (None, False, 0.1),  # no usable final model: the base score
        (0.0, False, 0.0),  # a model worse than the base counts as it is
    ],
)
def test_counted_score(final: float | None, flagged: bool, counted: float) -> None:
    assert run("x", "a", 0, final, flagged).counted == counted


def test_leaderboard_means_over_seeds_and_marks_flagged_runs() -> None:
    runs = [
        run("honest", "a", 0, 0.3), run("honest", "b", 0, 0.3),
        run("honest", "a", 1, 0.5), run("honest", "b", 1, 0.5),
        run("cheat", "a", 0, 1.0, flagged=True), run("cheat", "b", 0, 1.0, flagged=True),
    ]
    rows, weights, meta = leaderboard(runs)
    assert [r.agent for r in rows] == ["honest", "cheat"]
    honest, cheat = rows
    assert honest.mean == pytest.approx(0.4) and honest.std == pytest.approx(math.sqrt(0.02))
    assert honest.seeds == 2 and honest.flagged_runs == 0
    assert cheat.mean == pytest.approx(0.1) and cheat.flagged_runs == 2
    assert meta["base"] == pytest.approx({"a": 0.1, "b": 0.1})
    assert sum(weights.values()) == pytest.approx(1.0)


def test_mean_std_of_one_value_has_no_spread() -> None:
    assert mean_std([0.25]) == (0.25, 0.0)
