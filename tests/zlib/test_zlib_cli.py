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


@pytest.mark.parametrize("first", [DATA[:5000], DATA], ids=["small", "over 64 KiB"])
def test_reads_gzip_written_by_the_standard_library(tmp_path: Path, first: bytes) -> None:
    """Concatenated members, zero padding after them; a first member over one 64 KiB read counts once."""
    (tmp_path / "a.gz").write_bytes(gzip.compress(first) + gzip.compress(b"second member") + bytes(10))
    result = _cli("-d", "-k", "a.gz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a").read_bytes() == first + b"second member"
    assert (tmp_path / "a.gz").exists()


def test_trailing_garbage_is_a_warning_as_in_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.gz").write_bytes(gzip.compress(DATA) + b"junk")
    result = _cli("-d", "a.gz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.decode() == "spore.zlib: a.gz: decompression OK, trailing garbage ignored\n"
    assert (tmp_path / "a").read_bytes() == DATA


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


GZIP_HEADER = gzip.compress(b"")[:10]

ERRORS = [
    ("not gzip", ["-d", "x.gz"], b"plain text", "x.gz: not in gzip format"),
    ("truncated", ["-d", "x.gz"], gzip.compress(DATA)[:-20], "x.gz: unexpected end of file"),
    ("empty", ["-d", "x.gz"], b"", "x.gz: unexpected end of file"),
    (
        "corrupt",
        ["-d", "x.gz"],
        gzip.compress(DATA)[:-8] + b"\0" * 8,
        "invalid compressed data -- incorrect data check",
    ),
    ("corrupt body", ["-d", "x.gz"], GZIP_HEADER + b"\xff" * 40, "x.gz: invalid compressed data -- invalid block type"),
    ("no suffix", ["-d", "x"], b"", "x: unknown suffix -- ignored (expected .gz)"),
    ("missing file", ["nope"], None, "nope: No such file or directory"),
    ("missing file to stdout", ["-c", "nope"], None, "nope: No such file or directory"),
    ("directory", ["d"], "dir", "d: is a directory -- ignored"),
    ("directory to decompress", ["-d", "d.gz"], "dir", "d.gz: is a directory -- ignored"),
]


@pytest.mark.parametrize(("name", "args", "content", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_gets_a_clear_error(
    tmp_path: Path, name: str, args: list[str], content: bytes | str | None, message: str
) -> None:
    if content == "dir":
        (tmp_path / args[-1]).mkdir()
    elif isinstance(content, bytes):
        (tmp_path / args[-1]).write_bytes(content)
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    if args[-1] == "x.gz":
        assert not (tmp_path / "x").exists(), "a failed run leaves no partial output"
        assert (tmp_path / "x.gz").exists(), "nor loses its input"


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(DATA)
    (tmp_path / "f.gz").write_bytes(b"precious")
    assert b"already exists" in _cli("f", cwd=tmp_path).stderr
    assert (tmp_path / "f.gz").read_bytes() == b"precious"
    assert _cli("-f", "f", cwd=tmp_path).returncode == 0
