"""Bounded cost: no input makes decoding much dearer per input byte than ordinary data.

Issue 13's audit found a stream of tiny non-final dynamic blocks, each
declaring 15-bit codes and holding only end-of-block, that cost 46 s of CPU per
MB -- about 130 times spore's cost per byte of an ordinary stream (C zlib: 7
times). Each adversary of hostile_streams.py is timed here against C zlib's
level-6 stream of Canterbury files, in the same test, as CPU time per input
byte; the two are measured alternately and the medians compared, so that a
busy machine slows both alike.

MAX_COST_RATIO: measured on a 2-core machine (process CPU time, medians of 5):
ordinary data 0.40 us per input byte; the dearest adversaries, tiny and
distinct dynamic blocks, 2.8-3.9 us (7-10x; C zlib's own ratio on them is
6-7x); everything else below 8x. 20 leaves twice that for noise; before the
staged tables (inflate.py, "Building tables...") tiny dynamic blocks measured
130x.
"""

from __future__ import annotations

import statistics
import time
import zlib as c_zlib
from collections.abc import Callable

import pytest
from hostile_streams import HOSTILE

import spore.zlib as sz
from spore.zlib import inflate

MAX_COST_RATIO = 20
HOSTILE_BYTES = 30_000  # input size of each adversary
ORDINARY_BYTES = 100_000  # input size of the ordinary stream
REPEATS = 5


@pytest.fixture(scope="module")
def ordinary(canterbury: dict[str, bytes]) -> bytes:
    """C zlib's raw level-6 stream of a mix of text, spreadsheet, image and HTML, cut to ORDINARY_BYTES."""
    data = b"".join(canterbury[name] for name in ("alice29.txt", "kennedy.xls", "ptt5", "cp.html"))
    co = c_zlib.compressobj(6, c_zlib.DEFLATED, -15)
    stream = co.compress(data) + co.flush()
    assert len(stream) > ORDINARY_BYTES
    return stream[:ORDINARY_BYTES]  # a cut stream: decoded with decompressobj, no error


def _decode_all(stream: bytes) -> bytes:
    return sz.decompressobj(-15).decompress(stream)


def _cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_costs_at_most_a_constant_factor_of_ordinary_data(name: str, ordinary: bytes) -> None:
    hostile = HOSTILE[name](HOSTILE_BYTES)
    assert _decode_all(hostile) == c_zlib.decompressobj(-15).decompress(hostile)
    hostile_per_byte, ordinary_per_byte = [], []
    for _ in range(REPEATS):
        ordinary_per_byte.append(_cpu_seconds(lambda: _decode_all(ordinary)) / len(ordinary))
        hostile_per_byte.append(_cpu_seconds(lambda: _decode_all(hostile)) / len(hostile))
    ratio = statistics.median(hostile_per_byte) / statistics.median(ordinary_per_byte)
    assert ratio <= MAX_COST_RATIO, f"{name}: {ratio:.1f}x the CPU per input byte of ordinary data"


def test_distinct_tables_defeat_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'distinct' adversary builds a new code in every block, so its bound is not the cache's doing."""
    inflate._CODE_CACHE.clear()
    stream = HOSTILE["distinct dynamic blocks"](5_000)
    new_codes = 0
    build = inflate.dynamic_code

    def counting(lengths: bytes, count: list[int]) -> inflate.DynamicCode:
        nonlocal new_codes
        new_codes += len(lengths) > 30 and lengths not in inflate._CODE_CACHE
        return build(lengths, count)

    monkeypatch.setattr(inflate, "dynamic_code", counting)
    _decode_all(stream)
    assert new_codes > 130  # about 38 bytes a block: every literal/length code is new
