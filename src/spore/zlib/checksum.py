"""CRC-32 (RFC 1952 §8, ISO 3309) and Adler-32 (RFC 1950 §9), pure Python.

Both follow CPython's ``zlib.crc32(data, value=0)`` / ``zlib.adler32(data, value=1)``:
``value`` is the running checksum of the data before ``data``, the result is an
unsigned 32-bit int.

CRC-32 runs "slicing-by-16": ``CRC_TABLES[k][n]`` is the CRC register after
feeding byte ``n`` followed by ``k`` zero bytes into a zero register, so 16 bytes
fold into the register with 16 independent lookups. ``CRC_TABLES[0]`` is the
classic byte-at-a-time table. tests/zlib/test_proofs.py proves with z3, over the
very tables built here, that one table step equals eight steps of the bitwise
definition and that the 16-byte step equals sixteen byte steps.

Adler-32 defers the modulo: per block of ``NMAX`` bytes it sums with C-speed
iterators and reduces once. ``NMAX`` is zlib's bound, the largest n with
255·n·(n+1)/2 + (n+1)·(BASE−1) < 2³², which keeps every intermediate sum inside
32 bits (irrelevant to Python ints, but it is the bound the proof checks and the
one a fixed-width port would rely on).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate

Buffer = bytes | bytearray | memoryview  # collections.abc.Buffer arrives only in 3.12

CRC_POLY = 0xEDB88320  # x^32+x^26+...+1, bit-reversed (LSB-first), RFC 1952 §8
ADLER_BASE = 65521  # largest prime below 2^16, RFC 1950 §9
NMAX = 5552


def crc32_bitwise_byte(crc: int, byte: int) -> int:
    """The definition: shift one byte into the (reflected) register, bit by bit."""
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ CRC_POLY if crc & 1 else crc >> 1
    return crc


def _build_crc_tables() -> list[list[int]]:
    table0 = [crc32_bitwise_byte(0, n) for n in range(256)]
    tables = [table0]
    for _ in range(15):
        prev = tables[-1]
        # One more zero byte after the table entry: advance it one byte step.
        tables.append([table0[entry & 0xFF] ^ (entry >> 8) for entry in prev])
    return tables


CRC_TABLES: list[list[int]] = _build_crc_tables()


def crc32_fold16(crc: int, blocks: Iterable[tuple[int, ...]], tables: Sequence[Sequence[int]]) -> int:
    """Feed 16-byte blocks into the register, one table lookup per byte.

    The register only overlaps the first four bytes of a block; bytes 4..15 are
    looked up as they are. Only ``^ & >>`` and indexing are used, so the proofs
    run this very function on symbolic values.
    """
    t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15 = tables
    for b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15 in blocks:
        crc = (
            t15[b0 ^ (crc & 0xFF)]
            ^ t14[b1 ^ ((crc >> 8) & 0xFF)]
            ^ t13[b2 ^ ((crc >> 16) & 0xFF)]
            ^ t12[b3 ^ (crc >> 24)]
            ^ t11[b4]
            ^ t10[b5]
            ^ t9[b6]
            ^ t8[b7]
            ^ t7[b8]
            ^ t6[b9]
            ^ t5[b10]
            ^ t4[b11]
            ^ t3[b12]
            ^ t2[b13]
            ^ t1[b14]
            ^ t0[b15]
        )
    return crc


def crc32_bytewise(crc: int, data: Iterable[int], table: Sequence[int]) -> int:
    """Feed bytes into the register one at a time (the classic table-driven CRC)."""
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc32_update(crc: int, data: Buffer) -> int:
    """Feed ``data`` into the raw (pre/post-inverted) register ``crc``."""
    view = memoryview(data).cast("B")
    whole = len(view) - len(view) % 16
    it = iter(view[:whole])
    crc = crc32_fold16(crc, zip(*([it] * 16), strict=True), CRC_TABLES)
    return crc32_bytewise(crc, view[whole:], CRC_TABLES[0])


def crc32(data: Buffer, value: int = 0, /) -> int:
    """CRC-32 of ``data`` continuing from ``value``, as ``zlib.crc32``."""
    return crc32_update((value & 0xFFFFFFFF) ^ 0xFFFFFFFF, data) ^ 0xFFFFFFFF


def adler32_block(a: int, b: int, block: Buffer) -> tuple[int, int]:
    """Both Adler sums over ``block`` (at most NMAX bytes) with a single final modulo.

    After n bytes d_1..d_n: a' = a + Σd_i and b' = b + n·a + Σ_k (d_1+…+d_k),
    the second sum being the sum of the prefix sums.
    """
    n = len(block)
    total = sum(block)
    prefix_total = sum(accumulate(block))
    return (a + total) % ADLER_BASE, (b + n * a + prefix_total) % ADLER_BASE


def adler32(data: Buffer, value: int = 1, /) -> int:
    """Adler-32 of ``data`` continuing from ``value``, as ``zlib.adler32``."""
    value &= 0xFFFFFFFF
    a, b = value & 0xFFFF, value >> 16
    view = memoryview(data).cast("B")
    if len(view) == 1:
        # zlib's one-byte shortcut reduces each sum by a single subtraction, which
        # leaves b unreduced when the incoming b was itself >= BASE; CPython
        # reports that value, so we do too.
        a += view[0]
        if a >= ADLER_BASE:
            a -= ADLER_BASE
        b += a
        if b >= ADLER_BASE:
            b -= ADLER_BASE
        return (b << 16) | a
    # Even empty input reduces an out-of-range starting value, as zlib does.
    for start in range(0, max(len(view), 1), NMAX):
        a, b = adler32_block(a, b, view[start : start + NMAX])
    return (b << 16) | a
