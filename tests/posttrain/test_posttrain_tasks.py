"""Tasks: public and hidden items, the scorer, and the entropy the judge relies on."""

from __future__ import annotations

import pytest

from spore.data import encode
from spore.posttrain.tasks import TASKS, Item, exact_match, format_pair, get_task, score

ALL = sorted(TASKS)


@pytest.mark.parametrize("name", ALL)
def test_hidden_split_is_a_function_of_the_secret_alone(name: str) -> None:
    t = get_task(name)
    assert t.hidden_items("s1", 20) == t.hidden_items("s1", 20)
    assert t.hidden_items("s1", 20) != t.hidden_items("s2", 20)


@pytest.mark.parametrize("name", ALL)
def test_public_stream_never_meets_the_hidden_split(name: str) -> None:
    t = get_task(name)
    hidden = {it.question for it in t.hidden_items("secret", 200)}
    public = {it.question for it in t.public_items(20000, "any-seed")}
    assert not hidden & public


@pytest.mark.parametrize("name", ALL)
def test_prompt_and_answer_fit_the_base_context(name: str) -> None:
    t = get_task(name)
    for it in t.public_items(500, "x"):
        prompt, completion = format_pair(it)
        assert len(encode(prompt)) + t.max_answer_chars < 128
        assert len(it.answer) <= t.max_answer_chars
        assert completion == it.answer + "\n"


@pytest.mark.parametrize(
    ("prediction", "answer", "correct"),
    [
        ("42", "42", True),
        ("  42 ", "42", True),  # whitespace is layout
        ("4 2", "42", False),
        ("Y", "Y", True),
        ("y", "Y", False),  # case is the uppercase task's whole point
        ("", "7", False),
        ("7\n", "7", True),
    ],
)
def test_exact_match_after_normalization(prediction: str, answer: str, correct: bool) -> None:
    assert exact_match(prediction, answer) is correct


def test_score_is_the_share_of_exact_answers() -> None:
    items = [Item("q1", "1"), Item("q2", "2"), Item("q3", "3"), Item("q4", "4")]
    assert score(["1", "2", "x", " 4"], items) == 0.75
    with pytest.raises(ValueError, match="predictions"):
        score(["1"], items)


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(ValueError, match="arithmetic"):
        get_task("gsm8k")


@pytest.mark.parametrize("name", ALL)
def test_recorded_reference_is_above_the_recorded_base(name: str) -> None:
    """w_i = 1/(s_ref - s_base): a task whose reference learned nothing cannot be weighted."""
    t = get_task(name)
    assert 0.0 <= t.recorded_base_score < t.recorded_reference_score <= 1.0
