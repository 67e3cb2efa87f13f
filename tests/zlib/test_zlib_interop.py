"""spore.zlib reads every stream C zlib writes: the Canterbury corpus at every setting.

Levels 0-9, all strategies, memLevels 1 and 9, windows 9..15, raw/zlib/gzip
framing (and header-driven and automatic wbits), preset dictionaries, and a
stream flushed in every mode. Level 9 reads every file whole; the other
settings read the first 128 KiB of each file (four 32 KiB windows, several
blocks: the whole file adds only more of the same), and the level-6 ratio test
in test_interop_c_zlib.py reads the whole corpus at level 6. (The other
direction, C zlib reading what spore.zlib writes, is test_interop_c_zlib.py.)
"""

from __future__ import annotations

import zlib as c_zlib

import pytest
from zlib_harness import compress_with, decompress_whole

import spore.zlib as sz

SLICE = 128 * 1024
WHOLE_FILES = "level 9"

# (name, level, wbits, memLevel, strategy, read_wbits)
SETTINGS = [
    *[(f"level {level}", level, 15, 8, 0, 15) for level in range(10)],
    ("filtered", 6, 15, 8, c_zlib.Z_FILTERED, 15),
    ("huffman only", 6, 15, 8, c_zlib.Z_HUFFMAN_ONLY, 15),
    ("rle", 6, 15, 8, c_zlib.Z_RLE, 15),
    ("fixed", 6, 15, 8, c_zlib.Z_FIXED, 15),
    ("memLevel 1", 6, 15, 1, 0, 15),
    ("memLevel 9", 9, 15, 9, 0, 15),
    ("window 9, read as 15", 6, 9, 8, 0, 15),
    ("window 12, read from header", 6, 12, 8, 0, 0),
    ("raw window 10", 6, -10, 8, 0, -10),
    ("gzip", 6, 31, 8, 0, 31),
    ("gzip, read automatically", 1, 31, 8, 0, 47),
    ("zlib, read automatically", 1, 15, 8, 0, 47),
]


@pytest.mark.parametrize(("name", "level", "wbits", "mem_level", "strategy", "read_wbits"), SETTINGS)
def test_reads_c_zlib_canterbury(
    canterbury: dict[str, bytes], name: str, level: int, wbits: int, mem_level: int, strategy: int, read_wbits: int
) -> None:
    for file_name, data in canterbury.items():
        data = data if name == WHOLE_FILES else data[:SLICE]
        stream = compress_with(c_zlib, data, level, wbits, mem_level, strategy)
        assert sz.decompress(stream, read_wbits) == data, file_name


def test_reads_c_zlib_with_preset_dictionary(canterbury: dict[str, bytes]) -> None:
    for file_name, whole in canterbury.items():
        zdict = whole[len(whole) // 2 : len(whole) // 2 + 32768]
        data = whole[:SLICE]
        stream = compress_with(c_zlib, data, 6, zdict=zdict)
        assert decompress_whole(sz, stream, 15, zdict) == data, file_name


def test_reads_c_zlib_flushed_in_every_mode(canterbury: dict[str, bytes]) -> None:
    data = canterbury["alice29.txt"]
    co = c_zlib.compressobj(6)
    pieces = []
    modes = [c_zlib.Z_NO_FLUSH, c_zlib.Z_SYNC_FLUSH, c_zlib.Z_FULL_FLUSH, c_zlib.Z_PARTIAL_FLUSH, c_zlib.Z_BLOCK]
    for n, start in enumerate(range(0, len(data), 3001)):
        pieces.append(co.compress(data[start : start + 3001]))
        pieces.append(co.flush(modes[n % len(modes)]))
    pieces.append(co.flush())
    assert sz.decompress(b"".join(pieces)) == data
