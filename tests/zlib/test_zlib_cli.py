"""``python -m spore.zlib`` behaves like gzip on files: interoperable output, clear errors."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _cli(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "spore.zlib", *args], cwd=cwd, input=stdin, capture_output=True, env=env, timeout=120
    )


DATA = b"It was the best of times, it was the worst of times. " * 3000


def test_compress_then_decompress_a_file(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_bytes(DATA)
    assert _cli("book.txt", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "book.txt").exists()
    assert gzip.decompress((tmp_path / "book.txt.gz").read_bytes()) == DATA  # C zlib reads it
    assert _cli("-d", "book.txt.gz", cwd=tmp_path).returncode == 0
    assert (tmp_path / "book.txt").read_bytes() == DATA
    assert not (tmp_path / "book.txt.gz").exists()


def test_reads_gzip_written_by_the_standard_library(tmp_path: Path) -> None:
    (tmp_path / "a.gz").write_bytes(gzip.compress(DATA[:5000]) + gzip.compress(b"second member"))
    result = _cli("-d", "-k", "a.gz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a").read_bytes() == DATA[:5000] + b"second member"
    assert (tmp_path / "a.gz").exists()


@pytest.mark.parametrize("level", ["-1", "-9"])
def test_stdout_and_levels(tmp_path: Path, level: str) -> None:
    (tmp_path / "f").write_bytes(DATA)
    result = _cli("-c", level, "f", cwd=tmp_path)
    assert result.returncode == 0
    assert gzip.decompress(result.stdout) == DATA
    assert (tmp_path / "f").exists()


def test_pipe(tmp_path: Path) -> None:
    packed = _cli(cwd=tmp_path, stdin=DATA).stdout
    assert _cli("-d", cwd=tmp_path, stdin=packed).stdout == DATA


ERRORS = [
    ("not gzip", ["-d", "x.gz"], b"plain text", "x.gz: not in gzip format"),
    ("truncated", ["-d", "x.gz"], gzip.compress(DATA)[:-20], "x.gz: unexpected end of file"),
    ("corrupt", ["-d", "x.gz"], gzip.compress(DATA)[:-8] + b"\0" * 8, "incorrect data check"),
    ("no suffix", ["-d", "x"], b"", "x: unknown suffix -- ignored (expected .gz)"),
    ("missing file", ["nope"], None, "nope: No such file or directory"),
]


@pytest.mark.parametrize(("name", "args", "content", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_gets_a_clear_error(
    tmp_path: Path, name: str, args: list[str], content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / args[-1]).write_bytes(content)
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    if name in ("not gzip", "truncated", "corrupt"):
        assert not (tmp_path / "x").exists(), "a failed run leaves no partial output"


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(DATA)
    (tmp_path / "f.gz").write_bytes(b"precious")
    assert b"already exists" in _cli("f", cwd=tmp_path).stderr
    assert (tmp_path / "f.gz").read_bytes() == b"precious"
    assert _cli("-f", "f", cwd=tmp_path).returncode == 0
