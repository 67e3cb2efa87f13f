"""Bad input gets a clear error that names the flag or folder and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from spore.cli import main

from .conftest import spore


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The `spore` command in this process (no model is ever loaded for these)."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _run(base: Path | str, out: Path, *extra: str) -> list[str]:
    return ["posttrain", "run", "--agent", "builtin:honest-sft", "--base", str(base),
            "--task", "arithmetic", "--out", str(out), *extra]


CASES = [
    # (name, argv builder, what stderr must say)
    ("time limit not a duration", lambda b, t: _run(b, t / "r", "--time-limit", "soon"),
     "not a duration"),
    ("unknown task", lambda b, t: ["posttrain", "run", "--agent", "x", "--base", str(b),
                                   "--task", "gsm8k", "--out", str(t / "r")], "unknown task"),
    ("unknown builtin agent", lambda b, t: ["posttrain", "run", "--agent", "builtin:nope",
                                            "--base", str(b), "--task", "pyexpr",
                                            "--out", str(t / "r")], "builtin:honest-sft"),
    ("missing base", lambda b, t: _run(t / "nowhere", t / "r"), "no such folder"),
    ("base is not a model", lambda b, t: _run(t, t / "r"), "make-base"),
    ("memory size", lambda b, t: _run(b, t / "r", "--memory-limit", "lots"), "memory size"),
    ("judge a folder that is no run", lambda b, t: ["posttrain", "judge", str(t)],
     "not a finished posttrain run"),
    ("score a folder that is no run", lambda b, t: ["posttrain", "score", str(t)],
     "no result.json"),
]


@pytest.mark.parametrize(("name", "argv", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(base, tmp_path, capsys, name, argv, message):
    rc, err = cli(argv(base, tmp_path), capsys)
    assert rc == 2, err
    assert message in err
    assert not (tmp_path / "r").exists()  # nothing was started


def test_an_existing_run_folder_is_never_overwritten(base, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep").write_text("x")
    rc, err = cli(_run(base, out), capsys)
    assert rc == 2 and "not empty" in err
    assert (out / "keep").read_text() == "x"


def test_the_real_command_reports_errors_the_same_way(tmp_path):
    proc = spore("posttrain", "judge", tmp_path, check=False)
    assert proc.returncode == 2 and "not a finished posttrain run" in proc.stderr
