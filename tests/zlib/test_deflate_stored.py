"""Level 0 is C zlib's, byte for byte and call for call (issue 13, item 2).

zlib's deflate_stored sizes its stored blocks by the pending buffer (memLevel),
the window (wbits) and the output room CPython gives each deflate() call, so
the stream differs from "65535-byte blocks" almost everywhere: 65531-byte
blocks for the default settings at 64 KB and more, 1019-byte ones at memLevel
1, and so on (stored.py). Two specifications:

* every wbits (zlib, raw and gzip framing, 9..15) and every memLevel 1..9, on
  inputs from empty to 300 KB: compressobj's compress and flush give C zlib's
  bytes, and zlib.compress too;
* random programs of compress (0 to 200 KB) / flush (every mode) / copy calls
  with random settings and preset dictionaries: every call returns what C
  zlib's returns, bytes or exception.
"""

from __future__ import annotations

import random
import zlib as c_zlib
from types import ModuleType
from typing import Any

import pytest

import spore.zlib as sz

DATA = random.Random(16).randbytes(300_000)
SIZES = (0, 1, 1000, 32763, 32768, 65531, 65536, 70_000, 300_000)
ALL_WBITS = [*range(9, 16), *range(-15, -8), *range(25, 32)]
FLUSH_MODES = (c_zlib.Z_NO_FLUSH, c_zlib.Z_PARTIAL_FLUSH, c_zlib.Z_SYNC_FLUSH, c_zlib.Z_FULL_FLUSH,
               c_zlib.Z_FINISH, c_zlib.Z_BLOCK)  # fmt: skip


@pytest.mark.parametrize("wbits", ALL_WBITS)
def test_stored_blocks_match_c_zlib_for_every_mem_level(wbits: int) -> None:
    for mem_level in range(1, 10):
        for size in SIZES:
            calls = []
            for z in (c_zlib, sz):
                co = z.compressobj(0, z.DEFLATED, wbits, mem_level)
                calls.append((co.compress(DATA[:size]), co.flush()))
            assert calls[0] == calls[1], (wbits, mem_level, size)


@pytest.mark.parametrize("wbits", [15, -15, 31, 9, -9, 25])
def test_one_shot_compress_at_level_0_matches_c_zlib(wbits: int) -> None:
    for size in SIZES:
        assert sz.compress(DATA[:size], 0, wbits) == c_zlib.compress(DATA[:size], 0, wbits), size


def _run(z: ModuleType, settings: dict[str, Any], program: list[tuple[str, Any]]) -> list[Any]:
    """Each call's result, or the exception's type and text."""
    co = z.compressobj(**settings)
    results: list[Any] = []
    for op, argument in program:
        try:
            if op == "compress":
                results.append(co.compress(argument))
            elif op == "flush":
                results.append(co.flush(argument))
            else:  # carry on with a copy; the original must not matter any more
                co = co.copy()
                results.append("copied")
        except Exception as exc:  # compared, not hidden
            results.append((type(exc).__name__, str(exc)))
    return results


def _random_program(rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    wbits = rng.choice(ALL_WBITS)
    settings: dict[str, Any] = {"level": 0, "wbits": wbits, "memLevel": rng.randint(1, 9)}
    if wbits < 25 and rng.random() < 0.3:
        settings["zdict"] = rng.randbytes(rng.choice([1, 300, 40_000]))
    program: list[tuple[str, Any]] = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.55:
            size = rng.choice([0, 1, 17, 1000, 5000, 32768, 40_000, 65536, 70_000, 200_000])
            start = rng.randrange(len(DATA) - size + 1)
            program.append(("compress", DATA[start : start + size]))
        elif roll < 0.9:
            program.append(("flush", rng.choice(FLUSH_MODES)))
        else:
            program.append(("copy", None))
    if rng.random() < 0.8:
        program.append(("flush", c_zlib.Z_FINISH))
    return settings, program


@pytest.mark.parametrize("seed", range(20))
def test_random_programs_return_what_c_zlib_returns_call_by_call(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(15):
        settings, program = _random_program(rng)
        expected = _run(c_zlib, settings, program)
        got = _run(sz, settings, program)
        for index, (theirs, ours) in enumerate(zip(expected, got, strict=True)):
            assert ours == theirs, (settings, [(op, len(a) if isinstance(a, bytes) else a) for op, a in program], index)
