"""Every command driven with bad input, as a new user would: one line, no traceback (issue 12 item 4).

Each case is a real process (`python -m spore ...`, `python -m spore.zlib ...`)
and must exit non-zero with nothing on standard output and exactly one error
line on standard error: argparse's usage block may come first. The cases run
in parallel once per module; each test then reads its case's result. None
of them trains a model: a case that got past its check would hang until the
per-process timeout and fail.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SPORE = ["-m", "spore"]
# `spore` in an environment without the optional packages (pyproject's extras s3 and plots)
WITHOUT_EXTRAS = "import sys; sys.modules.update(boto3=None, botocore=None, matplotlib=None); "
SPORE_WITHOUT_EXTRAS = ["-c", WITHOUT_EXTRAS + "from spore.cli import main; sys.exit(main())"]
ZLIB = ["-m", "spore.zlib"]
ID = "ab" * 32  # a well-formed validator id that no run has
PROCESS_TIMEOUT = 240  # seconds; a case that starts real work instead of failing hits it
NO_CREDENTIALS = {  # no S3 credentials anywhere, and no instance-metadata lookup for them
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}
DUMMY_CREDENTIALS = NO_CREDENTIALS | {"AWS_ACCESS_KEY_ID": "spore-test", "AWS_SECRET_ACCESS_KEY": "spore-test"}
DEAD_S3 = "s3://bucket/run?endpoint=http://127.0.0.1:1"  # nothing listens on port 1


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # after `python`; {d} is the case's scratch folder
    says: str  # the error line contains this
    env: dict[str, str] | None = None


def _peer(store: str, *extra: str, spore: list[str] = SPORE) -> list[str]:
    return [*spore, "swarm", "peer", "--store", store, "--validator", ID, "--key", "{d}/key",
            "--workdir", "{d}/peer", "--wait", "1", *extra]


def _validator(store: str, *extra: str) -> list[str]:
    return [*SPORE, "swarm", "validator", "--store", store, "--key", "{d}/key", "--out", "{d}/out", *extra]


def _posttrain_run(*extra: str) -> list[str]:
    return [*SPORE, "posttrain", "run", "--agent", "true", "--base", "{d}/empty", "--task", "pyexpr",
            "--out", "{d}/run", *extra]


CASES = [
    # the command line itself
    Case("no command", SPORE, "a command is required: swarm, ledger, posttrain"),
    Case("unknown flag", [*SPORE, "--bogus"], "unrecognized arguments: --bogus"),
    Case("unknown flag after a command", [*SPORE, "swarm", "--bogus"], "unrecognized arguments: --bogus"),
    Case("unknown flag of a subcommand", [*SPORE, "swarm", "run", "--bogus"], "unrecognized arguments: --bogus"),
    Case("unknown subcommand", [*SPORE, "swarm", "fly"], "invalid choice: 'fly'"),
    Case("negative peers", [*SPORE, "swarm", "run", "--peers", "-2"], "--peers: must be at least 1"),
    Case("no windows", [*SPORE, "swarm", "run", "--windows", "0"], "--windows: must be at least 1"),
    Case("negative window length", [*SPORE, "swarm", "run", "--window-seconds", "-1"],
         "--window-seconds: must be a positive number"),
    Case("window length NaN", [*SPORE, "swarm", "run", "--window-seconds", "nan"],
         "--window-seconds: must be a positive number"),
    Case("unknown preset", [*SPORE, "swarm", "run", "--preset", "huge"], "unknown preset 'huge'"),
    Case("unknown adversary", [*SPORE, "swarm", "run", "--adversary", "dragon"], "unknown adversary 'dragon'"),
    Case("late peer beyond the peers", [*SPORE, "swarm", "run", "--peers", "2", "--late", "5@1", "--out", "{d}/r"],
         "--late 5@1: there are only 2 peers"),
    Case("negative min-peers", _validator("{d}/store", "--min-peers", "-1"), "--min-peers: must be at least 0"),
    Case("peer that waits no time", _peer("{d}/store", "--wait", "0"), "--wait: must be a positive number"),
    Case("peer with a malformed validator id", [*SPORE, "swarm", "peer", "--store", "{d}/empty", "--validator",
                                                "xyz", "--key", "{d}/key", "--workdir", "{d}/peer"],
         "'xyz' is not a peer id"),
    Case("keygen over an existing file", [*SPORE, "swarm", "keygen", "{d}/empty"], "refusing to overwrite"),
    # stores and networks
    Case("peer with no store folder", _peer("{d}/no-store"), "no such store directory"),
    Case("resume with no store folder", _validator("{d}/no-store", "--resume"), "no such store directory"),
    Case("resume on an empty store", _validator("{d}/empty", "--resume"), "no ledger at"),
    Case("peer with an unsupported store URL", _peer("ftp://host/store"), "unsupported store URL"),
    Case("peer with no store service", _peer("http://127.0.0.1:1"), "is the store service"),
    Case("peer on S3 without credentials", _peer(DEAD_S3), "set AWS_ACCESS_KEY_ID", NO_CREDENTIALS),
    Case("peer on a dead S3 endpoint", _peer(DEAD_S3), "cannot reach http://127.0.0.1:1", DUMMY_CREDENTIALS),
    Case("store service on a negative port", [*SPORE, "swarm", "store-server", "--root", "{d}/s", "--validator",
                                              ID, "--port", "-1"], "--port: must be at least 0"),
    # optional dependencies
    Case("S3 store without boto3", _peer(DEAD_S3, spore=SPORE_WITHOUT_EXTRAS), "pip install 'spore[s3]'"),
    Case("swarm run without matplotlib", [*SPORE_WITHOUT_EXTRAS, "swarm", "run", "--out", "{d}/r"],
         "pip install 'spore[plots]'"),
    # files that are not what they should be
    Case("verify a file that is no ledger", [*SPORE, "ledger", "verify", "{d}/text"], "is not a spore ledger"),
    Case("verify a missing ledger", [*SPORE, "ledger", "verify", "{d}/missing.sqlite"], "no ledger at"),
    Case("verify a folder without a ledger", [*SPORE, "ledger", "verify", "{d}/empty"], "no ledger at"),
    Case("verify with a malformed pin", [*SPORE, "ledger", "verify", "{d}/text", "--validator", "xyz"],
         "'xyz' is not a peer id"),
    Case("show a file that is no ledger", [*SPORE, "ledger", "show", "{d}/text"], "not a readable spore ledger"),
    Case("audit a missing run", [*SPORE, "ledger", "audit", "{d}/missing-run"], "no such store directory"),
    # posttrain
    Case("posttrain without a command", [*SPORE, "posttrain"], "a command is required"),
    Case("posttrain negative seed", _posttrain_run("--seed", "-1"), "--seed: must be at least 0"),
    Case("posttrain no time", _posttrain_run("--time-limit", "0"), "--time-limit: '0' is not a duration"),
    Case("posttrain unknown task", [*SPORE, "posttrain", "make-reference", "--base", "{d}/empty", "--out",
                                    "{d}/ref", "--task", "chess"], "unknown task 'chess'"),
    Case("posttrain no reference steps", [*SPORE, "posttrain", "make-reference", "--base", "{d}/empty", "--out",
                                          "{d}/ref", "--steps", "0"], "--steps: must be at least 1"),
    Case("posttrain judge a missing run", [*SPORE, "posttrain", "judge", "{d}/missing-run"], "missing-run"),
    Case("posttrain score a missing run", [*SPORE, "posttrain", "score", "{d}/missing-run"], "missing-run"),
    # python -m spore.zlib, as gzip(1) words it
    Case("zlib missing file", [*ZLIB, "{d}/missing"], "No such file or directory"),
    Case("zlib a folder", [*ZLIB, "{d}/empty"], "is a directory"),
    Case("zlib not gzip data", [*ZLIB, "-d", "-k", "{d}/bad.gz"], "not in gzip format"),
    Case("zlib no .gz suffix", [*ZLIB, "-d", "{d}/text"], "unknown suffix"),
    Case("zlib unknown flag", [*ZLIB, "--bogus"], "unrecognized arguments: --bogus"),
]


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    folder: Path


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **(extra or {}))
    return env


def _scratch(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "empty").mkdir()
    (folder / "text").write_text("hello, I am not a ledger\n")
    (folder / "bad.gz").write_bytes(b"not gzip at all")
    return folder


def _run(case: Case, folder: Path) -> Result:
    argv = [sys.executable, *(a.format(d=folder) for a in case.argv)]
    start = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=_env(case.env),
                       cwd=folder, timeout=PROCESS_TIMEOUT)
    return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - start, folder)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    root = tmp_path_factory.mktemp("bad-input")
    folders = {c.name: _scratch(root / f"case-{i}") for i, c in enumerate(CASES)}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {c.name: pool.submit(_run, c, folders[c.name]) for c in CASES}
        return {name: f.result() for name, f in futures.items()}


def error_lines(stderr: str) -> list[str]:
    """Standard error less argparse's usage block (a 'usage:' line and its indented continuations)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):
        lines = [line for line in lines[1:] if not line.startswith(" ")]
    return lines


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_fails(results: dict[str, Result], case: Case) -> None:
    r = results[case.name]
    shown = f"exit {r.rc}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stdout + r.stderr, shown
    assert r.rc != 0, shown
    assert r.stdout == "", shown
    lines = error_lines(r.stderr)
    assert len(lines) == 1, shown
    assert case.says in lines[0], shown


@pytest.mark.parametrize("name", ["peer with no store folder", "resume with no store folder"])
def test_a_mistyped_store_is_not_created(results: dict[str, Result], name: str) -> None:
    """Only `swarm run` and a validator opening a new run create a store folder."""
    assert not (results[name].folder / "no-store").exists()


def test_a_dead_s3_endpoint_fails_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three tries of a 3 s connect at most, not botocore's minutes of retries."""
    import boto3

    from spore.swarm.store import S3Store, StoreError

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    store = S3Store(DEAD_S3)
    for op in (lambda: store.put("a", b"x"), lambda: store.list("a"), lambda: store.delete("a")):
        start = time.monotonic()
        with pytest.raises(StoreError, match=re.escape("cannot reach http://127.0.0.1:1")):
            op()
        assert time.monotonic() - start < 15


def test_the_core_needs_no_extras(tmp_path: Path) -> None:
    """boto3 and matplotlib are imported only where S3 and plots are used."""
    lazy = "import spore.swarm.peer, spore.swarm.validator, spore.swarm.runner, spore.posttrain.harness, " \
           "spore.posttrain.report; from spore.cli import main; sys.exit(main())"
    p = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + lazy, "swarm", "keygen", str(tmp_path / "key")],
                       capture_output=True, text=True, env=_env(None), timeout=PROCESS_TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", p.stdout)


def test_zlib_writes_no_compressed_data_to_a_terminal(tmp_path: Path) -> None:
    """Like gzip: `python -m spore.zlib` at a terminal refuses, and -f forces it."""
    for force, refused in ((False, True), (True, False)):
        main, tty = pty.openpty()
        try:
            p = subprocess.run([sys.executable, *ZLIB, *(["-f"] if force else [])], stdin=subprocess.DEVNULL,
                               stdout=tty, stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(tty)
            os.close(main)
        if refused:
            assert p.returncode == 1
            assert error_lines(p.stderr) == ["spore.zlib: -: compressed data not written to a terminal; "
                                             "use -f to force"]
        else:
            assert p.returncode == 0, p.stderr


def test_every_flag_and_command_has_help() -> None:
    import argparse

    from spore.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action.choices, dict):  # subcommands
                missing.extend(f"{path} {c.dest}" for c in action._choices_actions if not c.help)
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "spore")
    assert missing == []


def test_help_shows_defaults() -> None:
    p = subprocess.run([sys.executable, *SPORE, "swarm", "run", "--help"], capture_output=True, text=True,
                       env=_env(None), timeout=PROCESS_TIMEOUT)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    for shown in ("(default: 3)", "(default: small)", "(default: runs/swarm)", "(default: all)"):
        assert shown in text
