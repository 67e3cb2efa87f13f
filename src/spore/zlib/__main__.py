"""``python -m spore.zlib``: compress and decompress files in gzip format, like gzip(1).

    python -m spore.zlib FILE...          FILE -> FILE.gz, FILE removed
    python -m spore.zlib -d FILE.gz...    FILE.gz -> FILE, FILE.gz removed
    python -m spore.zlib -c FILE > OUT    write to standard output, keep FILE
    -k keeps the input, -f overwrites an existing output, -1 .. -9 set the level.
    With no FILE (or "-"), standard input goes to standard output.

Data is streamed in 64 KiB pieces, so memory stays bounded whatever the file
size. Decompression accepts concatenated gzip members and zero padding, as gzip
does. Each failure is one line, ``spore.zlib: FILE: reason``, and leaves no
partial output and the input in place; the exit status is gzip's: 0, 1 after
any error, 2 after warnings only (trailing garbage after the last member).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

import spore.zlib as zlib

CHUNK = 65536
GZIP_WBITS = 31  # 16 + 15: gzip framing, 32 KiB window
GZIP_MAGIC = b"\x1f\x8b"


class UsageError(Exception):
    """A problem with one file, reported as 'spore.zlib: NAME: reason'."""


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def compress_stream(source: BinaryIO, target: BinaryIO, level: int) -> None:
    compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    for chunk in _chunks(source):
        target.write(compressor.compress(chunk))
    target.write(compressor.flush())


def decompress_stream(source: BinaryIO, target: BinaryIO) -> str | None:
    """Every gzip member in ``source``, as gzip(1) reads them; returns a warning, or None.

    Zero padding after a member is ignored. Bytes after a member that cannot
    start another are "trailing garbage": gzip keeps the output and warns, so do we.
    """
    decompressor = None  # the member being read; None between members
    members = 0
    for chunk in _chunks(source):
        data = chunk
        while data:
            if decompressor is None:
                if members and not data.strip(b"\0"):
                    break
                if not GZIP_MAGIC.startswith(data[:2]):  # RFC 1952 §2.3.1: ID1 ID2
                    if not members:
                        raise UsageError("not in gzip format")
                    return "decompression OK, trailing garbage ignored"
                decompressor = zlib.decompressobj(GZIP_WBITS)
            try:
                target.write(decompressor.decompress(data, CHUNK))
            except zlib.error as exc:
                reason = str(exc).partition(": ")[2] or str(exc)
                raise UsageError(f"invalid compressed data -- {reason}") from exc
            if decompressor.eof:
                # Everything after the member is in unused_data (CPython may repeat
                # it in unconsumed_tail, which must then not be read twice).
                data = decompressor.unused_data
                decompressor = None
                members += 1
            else:
                data = decompressor.unconsumed_tail
    if decompressor is not None:
        target.write(decompressor.flush())  # output the last max_length-limited call held back
        if not decompressor.eof:
            raise UsageError("unexpected end of file")
    elif not members:
        raise UsageError("unexpected end of file")  # empty input, as gzip says
    return None


def _output_name(name: str, decompress: bool) -> str:
    if not decompress:
        return name + ".gz"
    if not name.endswith(".gz") or len(name) == 3:
        raise UsageError("unknown suffix -- ignored (expected .gz)")
    return name[:-3]


def process_file(name: str, args: argparse.Namespace) -> str | None:
    """Compress or decompress one file (``-`` is standard input); returns a warning, or None."""
    if name == "-" or args.stdout:
        if not args.decompress and not args.force and sys.stdout.isatty():
            raise UsageError("compressed data not written to a terminal; use -f to force")
        with sys.stdin.buffer if name == "-" else _open(name) as source:
            warning = _run(source, sys.stdout.buffer, args)
        sys.stdout.buffer.flush()
        return warning
    target_name = _output_name(name, args.decompress)
    with _open(name, regular_only=True) as source:
        if os.path.exists(target_name) and not args.force:
            raise UsageError(f"{target_name} already exists; use -f to overwrite")
        target = _create(target_name)
        try:
            with target:
                warning = _run(source, target, args)
        except BaseException:
            os.unlink(target_name)  # a failed run leaves no partial output
            raise
    if not args.keep:
        try:
            os.unlink(name)
        except OSError as exc:
            raise UsageError(f"output written, but cannot remove the input: {exc.strerror or exc}") from exc
    return warning


def _open(name: str, *, regular_only: bool = False) -> BinaryIO:
    """``name`` opened for reading, or a UsageError saying why not, as gzip(1) words it."""
    try:
        mode = os.stat(name).st_mode
    except OSError as exc:
        raise UsageError(exc.strerror or str(exc)) from exc
    if stat.S_ISDIR(mode):
        raise UsageError("is a directory -- ignored")
    if regular_only and not stat.S_ISREG(mode):  # a FIFO or device would be unlinked afterwards
        raise UsageError("not a regular file -- ignored")
    try:
        return open(name, "rb")
    except OSError as exc:
        raise UsageError(exc.strerror or str(exc)) from exc


def _create(name: str) -> BinaryIO:
    try:
        return open(name, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write {name}: {exc.strerror or exc}") from exc


def _run(source: BinaryIO, target: BinaryIO, args: argparse.Namespace) -> str | None:
    try:
        if args.decompress:
            return decompress_stream(source, target)
        compress_stream(source, target, args.level)
    except OSError as exc:  # a read or write failed: disk full, I/O error, closed pipe
        raise UsageError(exc.strerror or str(exc)) from exc
    return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spore.zlib",
        description="gzip-compatible (de)compression",
        epilog="-1 .. -9: compression level (default 6). With no FILE, or FILE '-', "
        "read standard input and write standard output.",
    )
    parser.add_argument("-d", "--decompress", action="store_true", help="decompress")
    parser.add_argument("-c", "--stdout", action="store_true", help="write to standard output, keep files")
    parser.add_argument("-k", "--keep", action="store_true", help="keep the input files")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
    for level in range(1, 10):
        parser.add_argument(f"-{level}", dest="level", action="store_const", const=level, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", default=["-"], metavar="FILE")
    parser.set_defaults(level=6)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit status as gzip(1)'s: 0 success, 1 an error, 2 only warnings."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    status = 0
    for name in args.files:
        try:
            warning = process_file(name, args)
        except UsageError as exc:
            print(f"spore.zlib: {name}: {exc}", file=sys.stderr)
            status = 1
        else:
            if warning:
                print(f"spore.zlib: {name}: {warning}", file=sys.stderr)
                status = status or 2
    return status


if __name__ == "__main__":
    sys.exit(main())
