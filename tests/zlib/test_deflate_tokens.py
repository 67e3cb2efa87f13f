"""At every level 1-9, and for every strategy, our LZ77 stage makes exactly C zlib's choices.

Both streams are taken apart into their symbols with the reference decoder's
own pieces (spore.zlib.spec: bit reader, Huffman decoding, dynamic headers),
recording each literal and each (length, distance) pair instead of producing
bytes, and with block boundaries and types. The literal/match sequences must be
equal, block by block; only the Huffman codes may differ (ours are optimal,
zlib's are close to it), and so may a block's type when the sizes tie.

Settings that stress the chain rules: a 512-byte window (distance limits),
memLevel 1 (an 8-bit hash full of collisions, 127-symbol blocks), every
strategy, and a preset dictionary. Levels 1-3 (deflate_fast) leave the inside of
long matches out of the hash chains as zlib does (issue 13; before, they
linked every position and differed).
"""

from __future__ import annotations

import zlib as c_zlib
from typing import Any

import pytest
from zlib_harness import compress_with

import spore.zlib as sz
from spore.zlib import spec
from spore.zlib.lz77 import match_token


def stream_symbols(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The tokens of each block of a raw DEFLATE stream (stored blocks: their bytes as literals)."""
    blocks: list[list[int]] = []

    def record_codes(s: spec.BitReader, out: Any, lencode: spec.Huffman, distcode: spec.Huffman) -> None:
        tokens = blocks[-1]
        while True:
            symbol = spec.decode(s, lencode)
            if symbol < 256:
                tokens.append(symbol)
                continue
            if symbol == spec.END_OF_BLOCK:
                return
            symbol -= 257
            length = spec.LENGTH_BASE[symbol] + s.bits(spec.LENGTH_EXTRA[symbol])
            symbol = spec.decode(s, distcode)
            tokens.append(match_token(length, spec.DIST_BASE[symbol] + s.bits(spec.DIST_EXTRA[symbol])))

    monkeypatch.setattr(spec, "codes", record_codes)
    s = spec.BitReader(raw)
    last = 0
    while not last:
        last, block_type = s.bits(1), s.bits(2)
        blocks.append([])
        if block_type == 0:
            stored = bytearray()
            spec.stored(s, stored)
            blocks[-1].extend(stored)
        elif block_type == 1:
            spec.fixed(s, None)  # type: ignore[arg-type]
        else:
            spec.dynamic(s, None)  # type: ignore[arg-type]
    return blocks


SETTINGS = [
    # (level, wbits, memLevel, strategy, with a dictionary)
    (1, -15, 8, 0, False),
    (2, -15, 8, 0, False),
    (3, -15, 8, 0, False),
    (1, -9, 1, 0, False),
    (3, -12, 2, 1, False),
    (2, -15, 8, 4, True),
    (4, -15, 8, 0, False),
    (5, -15, 8, 0, False),
    (6, -15, 8, 0, False),
    (7, -15, 8, 0, False),
    (8, -15, 8, 0, False),
    (9, -15, 8, 0, False),
    (6, -9, 8, 0, False),
    (9, -9, 8, 0, False),
    (6, -15, 1, 0, False),
    (5, -12, 3, 0, False),
    (6, -15, 8, 1, False),  # Z_FILTERED
    (6, -15, 8, 2, False),  # Z_HUFFMAN_ONLY
    (1, -15, 2, 3, False),  # Z_RLE, 255-symbol blocks
    (9, -15, 8, 4, False),  # Z_FIXED
    (6, -15, 9, 0, True),
    (6, -10, 8, 0, True),
]


@pytest.mark.parametrize("name", ["alice29.txt", "kennedy.xls", "ptt5", "sum"])
@pytest.mark.parametrize(("level", "wbits", "mem_level", "strategy", "with_dict"), SETTINGS)
def test_token_stream_is_c_zlibs(
    canterbury: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    level: int,
    wbits: int,
    mem_level: int,
    strategy: int,
    with_dict: bool,
) -> None:
    data = canterbury[name][10_000:40_000]
    zdict = canterbury[name][:9_000] if with_dict else None
    ours = stream_symbols(compress_with(sz, data, level, wbits, mem_level, strategy, zdict), monkeypatch)
    theirs = stream_symbols(compress_with(c_zlib, data, level, wbits, mem_level, strategy, zdict), monkeypatch)
    assert [len(block) for block in ours] == [len(block) for block in theirs]
    assert ours == theirs


@pytest.mark.slow
@pytest.mark.parametrize("level", [6, 9])
def test_token_stream_is_c_zlibs_across_window_slides(
    canterbury: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, level: int
) -> None:
    """200 KB fed in odd-sized pieces: both windows slide several times, our input is split."""
    data = canterbury["kennedy.xls"][:100_000] + canterbury["alice29.txt"][:100_000]
    co = sz.compressobj(level, sz.DEFLATED, -15)
    ours = b"".join(co.compress(data[i : i + 7_777]) for i in range(0, len(data), 7_777)) + co.flush()
    theirs = c_zlib.compress(data, level, -15)
    assert stream_symbols(ours, monkeypatch) == stream_symbols(theirs, monkeypatch)
