"""Hostile input: nothing but zlib.error, no hangs, memory bounded by max_length and the window.

Each adversary is named for what it tries. The decompressor must answer every
one with output or ``zlib.error`` (ValueError/TypeError only for bad arguments,
as CPython), in time proportional to the input and output, and -- when the
caller bounds the output with max_length -- holding no more than that output,
the 32 KiB window and the input it was given.
"""

from __future__ import annotations

import contextlib
import random
import time
import tracemalloc
import zlib as c_zlib

import pytest
from zlib_harness import read_in_limited_pieces

import spore.zlib as sz
from spore.zlib.inflate import WINDOW_SIZE

ALL_WBITS = (-15, -9, -8, 0, 8, 9, 15, 24, 31, 40, 47)


def _decompress_or_error(data: bytes, wbits: int, max_length: int = 0) -> bytes:
    d = sz.decompressobj(wbits)
    try:
        out = d.decompress(data, max_length)
        out += d.flush()
    except sz.error:
        return b""
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_only_ever_raise_zlib_error(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        data = rng.randbytes(rng.choice([1, 4, 16, 100, 2000]))
        wbits = rng.choice(ALL_WBITS)
        with contextlib.suppress(sz.error):
            sz.decompress(data, wbits)
        _decompress_or_error(data, wbits, 7)


def _bomb(size: int) -> bytes:
    return c_zlib.compress(b"\0" * size, 9)


def test_bomb_is_bounded_by_max_length() -> None:
    """A 1000:1 stream handed over whole, read 64 KiB at a time: output and memory stay bounded."""
    bomb = _bomb(50_000_000)
    d = sz.decompressobj()
    tracemalloc.start()
    try:
        first = d.decompress(bomb, 65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 65536
    # output + window + a copy of the input, with slack for bookkeeping
    assert peak < 4 * (65536 + WINDOW_SIZE) + 2 * len(bomb) + 200_000, peak
    total, tail = len(first), d.unconsumed_tail
    calls = 0
    while not d.eof and calls < 20:
        total += len(d.decompress(tail, 65536))
        tail = d.unconsumed_tail
        calls += 1
    assert total <= 65536 * (calls + 1)


def test_engine_keeps_only_the_window_between_calls() -> None:
    bomb = _bomb(5_000_000)
    d = sz.decompressobj()
    for start in range(0, len(bomb), 1000):
        d.decompress(bomb[start : start + 1000], 100_000)
        d.decompress(d.unconsumed_tail, 100_000)
        engine = d._engine
        assert len(engine.history) <= WINDOW_SIZE
        assert len(engine.carry) < 1000


def test_endless_gzip_file_name_does_not_accumulate() -> None:
    """A gzip header whose FNAME never ends: zlib holds nothing; neither may we."""
    d = sz.decompressobj(31)
    d.decompress(b"\x1f\x8b\x08\x08" + b"\0" * 6)
    for _ in range(200):
        assert d.decompress(b"x" * 10_000) == b""
    assert len(d._engine.carry) < 16
    assert not d.eof


def test_endless_empty_stored_blocks_take_linear_time() -> None:
    stream = b"\x00\x00\x00\xff\xff" * 200_000 + b"\x03\x00"
    started = time.perf_counter()
    assert sz.decompress(stream, -15) == b""
    assert time.perf_counter() - started < 20


def test_max_length_one_always_makes_progress() -> None:
    data = bytes(range(256)) * 8
    stream = c_zlib.compress(data, 9)
    d = sz.decompressobj()
    out = read_in_limited_pieces(d, stream, 1, calls=len(data) + 5)
    assert out == data and d.eof


def test_garbage_megabyte_fails_fast() -> None:
    data = random.Random(9).randbytes(1_000_000)
    started = time.perf_counter()
    for wbits in (-15, 47):
        with pytest.raises(sz.error):
            sz.decompress(data, wbits)
    assert time.perf_counter() - started < 20


def test_distance_before_the_dictionary_is_too_far_back() -> None:
    """A raw stream that copies a whole 64-byte dictionary, read with the dictionary cut short."""
    zdict = bytes(range(64))
    co = c_zlib.compressobj(9, c_zlib.DEFLATED, -15, zdict=zdict)
    stream = co.compress(zdict) + co.flush()
    assert sz.decompressobj(-15, zdict=zdict).decompress(stream) == zdict
    for module in (sz, c_zlib):
        with pytest.raises(module.error, match="invalid distance too far back"):
            module.decompressobj(-15, zdict=zdict[8:]).decompress(stream)
