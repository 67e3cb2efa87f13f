"""CRC-32 and Adler-32 agree with C zlib's, value for value.

Known answers (from CPython's test_zlib and RFC examples), then every length
around the kernels' block boundaries (16 for CRC-32's slicing, NMAX for
Adler-32's deferred modulo) from many starting values, then buffer types.
"""

from __future__ import annotations

import array
import random
import zlib as c_zlib

import pytest

import spore.zlib as sz
from spore.zlib.checksum import NMAX

KNOWN = [
    # (function, data, start, expected)
    ("crc32", b"", 0, 0),
    ("crc32", b"", 432, 432),
    ("crc32", b"penguin", 0, 0x0E5C1A120),
    ("crc32", b"penguin", 1, 0x43B6AA94),
    ("crc32", b"abcdefghijklmnop", 0, 2486878355),
    ("crc32", b"spam", 0, 1138425661),
    ("crc32", b"123456789", 0, 0xCBF43926),  # the CRC-32 check value
    ("adler32", b"", 1, 1),
    ("adler32", b"", 432, 432),
    ("adler32", b"penguin", 0, 0x0BCF02F6),
    ("adler32", b"penguin", 1, 0x0BD602F7),
    ("adler32", b"abcdefghijklmnop" * 2, 1, 3573550353),
    ("adler32", b"spam", 1, 72286642),
    ("adler32", b"Wikipedia", 1, 0x11E60398),
]


@pytest.mark.parametrize(("function", "data", "start", "expected"), KNOWN)
def test_known_answers(function: str, data: bytes, start: int, expected: int) -> None:
    assert getattr(sz, function)(data, start) == expected


LENGTHS = [*range(0, 40), 255, 256, 257, NMAX - 1, NMAX, NMAX + 1, 2 * NMAX + 3, 70_000]
STARTS = [0, 1, 0xFFFFFFFF, 0xFFF0FFF0, 0x0000FFFF, 0xFFFF0000, 0x12345678, 65521, 65520 << 16]


@pytest.mark.parametrize("length", LENGTHS)
def test_matches_c_zlib_at_block_boundaries(length: int) -> None:
    rng = random.Random(length)
    for data in (rng.randbytes(length), b"\xff" * length, bytes(length)):
        for start in [*STARTS, rng.getrandbits(32)]:
            assert sz.crc32(data, start) == c_zlib.crc32(data, start)
            assert sz.adler32(data, start) == c_zlib.adler32(data, start)


def test_running_checksums_compose() -> None:
    data = random.Random(2).randbytes(50_000)
    crc, adler = 0, 1
    for i in range(0, len(data), 777):
        crc = sz.crc32(data[i : i + 777], crc)
        adler = sz.adler32(data[i : i + 777], adler)
    assert (crc, adler) == (c_zlib.crc32(data), c_zlib.adler32(data))


@pytest.mark.parametrize(
    "buffer",
    [bytearray(b"abc"), memoryview(b"abcdef")[1:4], array.array("I", [1, 2, 3]), memoryview(b"xyzw").cast("H")],
    ids=["bytearray", "memoryview-slice", "array", "memoryview-cast"],
)
def test_any_contiguous_buffer(buffer: object) -> None:
    assert sz.crc32(buffer) == c_zlib.crc32(buffer)
    assert sz.adler32(buffer) == c_zlib.adler32(buffer)


def test_adler32_one_byte_with_unreduced_start_matches_zlib_quirk() -> None:
    """zlib's one-byte path reduces once; with b >= 65521 coming in, b stays unreduced."""
    for a0 in range(65000, 65536, 13):
        for b0 in (0, 65520, 65521, 65535):
            for byte in (0, 100, 255):
                start = b0 << 16 | a0
                assert sz.adler32(bytes([byte]), start) == c_zlib.adler32(bytes([byte]), start)
