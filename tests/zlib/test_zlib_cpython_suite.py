"""CPython's own test_zlib and test_gzip pass with spore.zlib standing in for zlib.

CPython 3.11 loads zlib as an extension module, so a ``zlib.py`` earlier on the
path (tests/zlib/shim) replaces it, and gzip then runs on it too. Each suite runs
in a subprocess twice, with the shim and with the real zlib: every test must
pass with the shim, and a test may be skipped only if CPython skips it too, for
the same reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
RUNNER = HERE / "cpython_suite_runner.py"


def _run_suite(module: str, *, shim: bool) -> dict[str, list[str]]:
    env = dict(os.environ)
    path = [str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if shim:
        path.insert(0, str(HERE / "shim"))
    env["PYTHONPATH"] = os.pathsep.join(path)
    expected = str(Path("shim") / "zlib.py") if shim else ".so"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), expected, module],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])["outcomes"]


@pytest.mark.slow
@pytest.mark.parametrize("module", ["test.test_zlib", "test.test_gzip"])
def test_cpython_suite_passes_on_spore_zlib(module: str) -> None:
    ours = _run_suite(module, shim=True)
    theirs = _run_suite(module, shim=False)
    assert set(ours) == set(theirs), "the two runs collected different tests"
    broken = {test: detail for test, (status, detail) in ours.items() if status in ("fail", "error")}
    assert not broken, json.dumps(broken, indent=1)[:8000]
    skipped = {test: reason for test, (status, reason) in ours.items() if status == "skip"}
    cpython_skipped = {test: reason for test, (status, reason) in theirs.items() if status == "skip"}
    assert skipped == cpython_skipped
    assert sum(status == "pass" for status, _ in ours.values()) >= 60
