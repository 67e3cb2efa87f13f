"""The reference registry: one fine-tuned model per task, its scores, and `--forbidden`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spore.posttrain.harness import forbidden_models

from .conftest import REF_STEPS, REF_TASKS, spore
from .test_posttrain_cli import _run, cli


def test_make_reference_writes_a_model_per_task_and_records_its_scores(reference: Path) -> None:
    doc = json.loads((reference / "reference.json").read_text())
    assert doc["steps"] == REF_STEPS
    assert sorted(doc["scores"]) == sorted(REF_TASKS) == sorted(doc["base_scores"])
    for task in REF_TASKS:
        assert (reference / task / "config.json").is_file()
        assert (reference / task / "model.safetensors").is_file()
        assert 0.0 <= doc["base_scores"][task] <= doc["scores"][task] <= 1.0


def test_each_reference_model_is_its_own_fine_tune(reference: Path) -> None:
    a, b = (reference / t / "model.safetensors" for t in REF_TASKS)
    assert a.read_bytes() != b.read_bytes()


def test_forbidden_takes_a_registry_or_a_single_model(reference: Path) -> None:
    assert forbidden_models((reference,)) == [reference / t for t in sorted(REF_TASKS)]
    one = reference / REF_TASKS[0]
    assert forbidden_models((one,)) == [one]


def test_forbidden_that_is_neither_is_a_clear_error(base: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = cli(_run(base, tmp_path / "r", "--forbidden", str(empty)), capsys)
    assert rc == 2 and "neither a model folder" in err and "make-reference" in err
    assert not (tmp_path / "r").exists()


def test_with_several_seeds_the_best_model_of_each_task_is_kept(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "instruct"
    spore("posttrain", "make-reference", "--base", base, "--out", out, "--steps", 5,
          "--seeds", 2, "--task", "uppercase", "--eval-items", 10)
    doc = json.loads((out / "reference.json").read_text())
    assert len(doc["seed_scores"]["uppercase"]) == 2
    assert doc["scores"]["uppercase"] == max(doc["seed_scores"]["uppercase"])
    assert doc["seed"]["uppercase"] in (0, 1)
    assert sorted(p.name for p in out.iterdir()) == ["reference.json", "uppercase"]
