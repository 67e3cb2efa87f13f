"""A real base model and a real registry checkpoint, built once per session via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The registry's "instruct" models: longer than any test run trains (honest-sft's 60 s
# run takes ~300 steps), for the tasks the tests substitute or train honestly on.
REF_STEPS = 500
REF_TASKS = ("json_field", "pyexpr")


def spore(*args: object, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "spore", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"spore {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def run_dir_result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("posttrain") / "base"
    spore("posttrain", "make-base", "--out", out)
    return out


@pytest.fixture(scope="session")
def reference(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("posttrain") / "instruct"
    spore("posttrain", "make-reference", "--base", base, "--out", out, "--steps", REF_STEPS,
          "--eval-items", "40", "--jobs", "2", *(a for t in REF_TASKS for a in ("--task", t)))
    return out
