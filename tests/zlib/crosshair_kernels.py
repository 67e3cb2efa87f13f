"""Pairs of functions for CrossHair's diffbehavior (a separate command, not the test suite).

    PYTHONPATH=src:tests/zlib crosshair diffbehavior \\
        crosshair_kernels.fast_acceptable crosshair_kernels.reference_acceptable --per_path_timeout=2

Each pair takes the same arguments; CrossHair searches symbolically for an
input on which they differ (result or exception).
"""

from __future__ import annotations

from spore.zlib import checksum, inflate, spec


def _small_lengths(lengths: list[int]) -> list[int]:
    return [length % 16 for length in lengths[:19]]


def fast_acceptable(lengths: list[int], is_code_length_code: bool) -> bool:
    """The fast decoder's code-acceptance rule."""
    return inflate.lengths_acceptable(_small_lengths(lengths), is_code_length_code)


def reference_acceptable(lengths: list[int], is_code_length_code: bool) -> bool:
    """The reference decoder's code-acceptance rule."""
    h = spec.construct(_small_lengths(lengths))
    return spec.code_is_acceptable(h, is_code_length_code=is_code_length_code)


def fast_crc_bytes(register: int, data: bytes) -> int:
    """CRC-32 register update with the module's table."""
    return checksum.crc32_bytewise(register & 0xFFFFFFFF, data[:4], checksum.CRC_TABLES[0])


def reference_crc_bytes(register: int, data: bytes) -> int:
    """CRC-32 register update, bit by bit (the definition)."""
    register &= 0xFFFFFFFF
    for byte in data[:4]:
        register = checksum.crc32_bitwise_byte(register, byte)
    return register


def fast_adler(data: bytes, value: int) -> int:
    """Adler-32 with deferred modulo."""
    return checksum.adler32(data[:40], value & 0xFFFFFFFF)


def reference_adler(data: bytes, value: int) -> int:
    """Adler-32 reduced after every byte (RFC 1950 §9), with zlib's one-byte quirk."""
    value &= 0xFFFFFFFF
    a, b = value & 0xFFFF, value >> 16
    data = data[:40]
    if len(data) == 1:
        a += data[0]
        a -= 65521 if a >= 65521 else 0
        b += a
        b -= 65521 if b >= 65521 else 0
        return b << 16 | a
    a, b = a % 65521, b % 65521
    for byte in data:
        a = (a + byte) % 65521
        b = (b + a) % 65521
    return b << 16 | a
