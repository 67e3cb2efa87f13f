"""Refinement: the fast decoder does exactly what the reference decoder does.

For every input -- streams C zlib wrote at many settings, and those streams
damaged (bit flips, truncation, junk appended), and plain random bytes -- the
fast decoder (spore.zlib.inflate.Inflater, driven as decompressobj drives it)
and the spec decoder (spore.zlib.spec) produce the same outcome: the same output
and unused data, or the same truncation point, or the same zlib error message.
The API layer on top gives the same outcome too (checked here on the C-zlib
streams; against C zlib itself in test_zlib_api.py).
"""

from __future__ import annotations

import random
import zlib as c_zlib

import pytest
from zlib_harness import (
    api_outcome,
    fast_outcome,
    mutate,
    random_c_zlib_case,
    spec_outcome,
)

CASES = 150  # seeded, so a failure is reproducible: the seed is in the test id
WBITS_FOR_NOISE = (-15, -9, 15, 0, 31, 47, 8, -8)


@pytest.mark.parametrize("seed", range(CASES))
def test_fast_equals_spec_on_c_zlib_streams(seed: int) -> None:
    rng = random.Random(seed)
    stream, wbits, zdict, payload = random_c_zlib_case(rng)
    expected = spec_outcome(stream, wbits, zdict)
    assert fast_outcome(stream, wbits, zdict) == expected
    assert api_outcome(stream, wbits, zdict) == expected
    assert expected == ("ok", payload, b"")


@pytest.mark.parametrize("seed", range(CASES))
def test_fast_equals_spec_on_damaged_streams(seed: int) -> None:
    rng = random.Random(1_000_000 + seed)
    stream, wbits, zdict, _ = random_c_zlib_case(rng)
    damaged = mutate(rng, stream)
    assert fast_outcome(damaged, wbits, zdict) == spec_outcome(damaged, wbits, zdict)


@pytest.mark.parametrize("seed", range(CASES))
def test_fast_equals_spec_on_random_bytes(seed: int) -> None:
    rng = random.Random(2_000_000 + seed)
    noise = rng.randbytes(rng.choice([1, 2, 3, 5, 10, 50, 300]))
    if rng.random() < 0.5:  # a plausible block header makes the noise go deeper
        noise = bytes([noise[0] & 0xF9 | rng.choice([2, 4])]) + noise[1:]
    wbits = rng.choice(WBITS_FOR_NOISE)
    assert fast_outcome(noise, wbits) == spec_outcome(noise, wbits)


def _small_streams() -> list[object]:
    text = b"Jackdaws love my big sphinx of quartz. " * 3 + bytes(range(40))
    fixed = c_zlib.compressobj(6, c_zlib.DEFLATED, -15, 8, c_zlib.Z_FIXED)
    return [
        pytest.param(c_zlib.compress(text, 0), 15, id="stored-zlib"),
        pytest.param(fixed.compress(text[:60]) + fixed.flush(), -15, id="fixed-raw"),
        pytest.param(c_zlib.compress(text, 9, wbits=-15), -15, id="dynamic-raw"),
        pytest.param(c_zlib.compress(text, 6, wbits=31), 31, id="dynamic-gzip"),
    ]


@pytest.mark.parametrize(("stream", "wbits"), _small_streams())
def test_every_truncation_agrees(stream: bytes, wbits: int) -> None:
    """Cut a stream at every byte: both decoders stop at the same place with the same output."""
    for cut in range(len(stream)):
        assert fast_outcome(stream[:cut], wbits) == spec_outcome(stream[:cut], wbits), cut


@pytest.mark.parametrize(("stream", "wbits"), _small_streams())
def test_every_single_bit_flip_agrees(stream: bytes, wbits: int) -> None:
    """Flip each bit of a stream in turn: both decoders reach the same verdict."""
    for bit in range(8 * len(stream)):
        damaged = bytearray(stream)
        damaged[bit >> 3] ^= 1 << (bit & 7)
        assert fast_outcome(bytes(damaged), wbits) == spec_outcome(bytes(damaged), wbits), bit
