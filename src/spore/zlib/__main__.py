"""``python -m spore.zlib``: compress and decompress files in gzip format, like gzip(1).

    python -m spore.zlib FILE...          FILE -> FILE.gz, FILE removed
    python -m spore.zlib -d FILE.gz...    FILE.gz -> FILE, FILE.gz removed
    python -m spore.zlib -c FILE > OUT    write to standard output, keep FILE
    -k keeps the input, -f overwrites an existing output, -1 .. -9 set the level.
    With no FILE (or "-"), standard input goes to standard output.

Data is streamed in 64 KiB pieces, so memory stays bounded whatever the file
size. Decompression accepts concatenated gzip members, as gzip does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

import spore.zlib as zlib

CHUNK = 65536
GZIP_WBITS = 31  # 16 + 15: gzip framing, 32 KiB window


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


def decompress_stream(source: BinaryIO, target: BinaryIO) -> None:
    """Every gzip member in ``source``; trailing zero padding is tolerated, as gzip does."""
    decompressor = zlib.decompressobj(GZIP_WBITS)
    seen_member = False
    for chunk in _chunks(source):
        data = chunk
        while data:
            try:
                target.write(decompressor.decompress(data, CHUNK))
            except zlib.error as exc:
                if not seen_member:
                    raise UsageError("not in gzip format") from exc
                raise UsageError(f"invalid compressed data ({exc})") from exc
            seen_member = True
            data = decompressor.unconsumed_tail
            if decompressor.eof:
                data = decompressor.unused_data + data
                if not data.strip(b"\0"):
                    data = b""
                decompressor = zlib.decompressobj(GZIP_WBITS)
                seen_member = bool(data)
    if decompressor.unconsumed_tail or (seen_member and not decompressor.eof):
        target.write(decompressor.flush())
        if not decompressor.eof:
            raise UsageError("unexpected end of file")


def _output_name(name: str, decompress: bool) -> str:
    if not decompress:
        return name + ".gz"
    if not name.endswith(".gz") or len(name) == 3:
        raise UsageError("unknown suffix -- ignored (expected .gz)")
    return name[:-3]


def process_file(name: str, args: argparse.Namespace) -> None:
    if name == "-" or args.stdout:
        source = sys.stdin.buffer if name == "-" else _open(name)
        with source:
            _run(source, sys.stdout.buffer, args)
        sys.stdout.buffer.flush()
        return
    target_name = _output_name(name, args.decompress)
    if os.path.exists(target_name) and not args.force:
        raise UsageError(f"{target_name} already exists; use -f to overwrite")
    with _open(name) as source:
        try:
            with open(target_name, "wb") as target:
                _run(source, target, args)
        except BaseException:
            os.unlink(target_name)
            raise
    if not args.keep:
        os.unlink(name)


def _open(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except OSError as exc:
        raise UsageError(exc.strerror or str(exc)) from exc


def _run(source: BinaryIO, target: BinaryIO, args: argparse.Namespace) -> None:
    if args.decompress:
        decompress_stream(source, target)
    else:
        compress_stream(source, target, args.level)


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
    args = parse_args(sys.argv[1:] if argv is None else argv)
    status = 0
    for name in args.files:
        try:
            process_file(name, args)
        except UsageError as exc:
            print(f"spore.zlib: {name}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
