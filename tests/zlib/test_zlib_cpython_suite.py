"""CPython's own test_zlib and test_gzip pass with spore.zlib standing in for zlib.

CPython 3.11 loads zlib as an extension module, so a ``zlib.py`` earlier on the
path (tests/zlib/shim) replaces it, and gzip then runs on it too. Each suite runs
in subprocesses, with the shim and with the real zlib: every test must pass with
the shim, and a test may be skipped only if CPython skips it too, for the same
reason. The shim run goes one TestCase class per subprocess, two at a time, so
that test_zlib's two 10 MiB compressions (most of the time) run side by side;
every test the real run collects is run, nothing is left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
RUNNER = HERE / "cpython_suite_runner.py"
PARALLEL_RUNS = 2


def _run_suite(names: list[str], *, shim: bool) -> dict[str, list[str]]:
    """Each test's [status, detail] from running ``names`` (modules or TestCase classes) in a subprocess."""
    env = dict(os.environ)
    path = [str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if shim:
        path.insert(0, str(HERE / "shim"))
    env["PYTHONPATH"] = os.pathsep.join(path)
    expected = str(Path("shim") / "zlib.py") if shim else ".so"
    # CPython's tests write @test_PID_tmp files into the working directory: give them a scratch one.
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run(
            [sys.executable, str(RUNNER), expected, *names],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
            cwd=scratch,
        )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])["outcomes"]


def _test_case_class(test_id: str) -> str:
    return test_id.split(" ")[0].rsplit(".", 1)[0]


@pytest.mark.slow
@pytest.mark.parametrize("module", ["test.test_zlib", "test.test_gzip"])
def test_cpython_suite_passes_on_spore_zlib(module: str) -> None:
    theirs = _run_suite([module], shim=False)
    classes = sorted({_test_case_class(test) for test in theirs})
    ours: dict[str, list[str]] = {}
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        for outcomes in pool.map(lambda name: _run_suite([name], shim=True), classes):
            ours.update(outcomes)
    assert set(ours) == set(theirs), "the two runs collected different tests"
    broken = {test: detail for test, (status, detail) in ours.items() if status in ("fail", "error")}
    assert not broken, json.dumps(broken, indent=1)[:8000]
    skipped = {test: reason for test, (status, reason) in ours.items() if status == "skip"}
    cpython_skipped = {test: reason for test, (status, reason) in theirs.items() if status == "skip"}
    assert skipped == cpython_skipped
    assert sum(status == "pass" for status, _ in ours.values()) >= 60
