"""spore.zlib and C zlib read each other's streams, for every setting compressobj takes.

Both directions, on Canterbury corpus slices and random bytes:

* C zlib (CPython's ``zlib``) decompresses what spore.zlib's compressor writes;
* spore.zlib's decompressor reads what C zlib's compressor writes, same settings.

The full settings matrix is every combination of level 0-9, strategy and
framing (zlib with a 32 KiB and a 512-byte window, raw, gzip), cycling
memLevel 1-9 through them and adding a preset dictionary to every other one,
plus each wbits value on its own. spore.zlib reads C zlib's streams at every
setting of it. The pure-Python encoder is slow, so the other direction runs on
a covering sample: every (level, strategy) pair once, its framing chosen so
that every (level, framing) and every (strategy, framing) pair occurs too. The
matrix runs on ~10 KB inputs; whole files go through level 6 (where the
compression ratio must also stay within 2% of C zlib's, the project's target)
and level 1.
"""

from __future__ import annotations

import itertools
import random
import zlib as c_zlib
from typing import NamedTuple

import pytest
from zlib_harness import compress_with, decompress_whole

import spore.zlib as sz


class Setting(NamedTuple):
    level: int = 6
    wbits: int = 15
    mem_level: int = 8
    strategy: int = 0
    with_dict: bool = False

    def __str__(self) -> str:
        d = "+zdict" if self.with_dict else ""
        return f"L{self.level}-w{self.wbits}-m{self.mem_level}-s{self.strategy}{d}"


LEVELS = list(range(-1, 10))
WBITS = [9, 10, 12, 15, -9, -12, -15, 25, 31]
MEM_LEVELS = list(range(1, 10))
STRATEGIES = list(range(5))


FRAMINGS = (15, -15, 31, 9)


def _setting(i: int, level: int, strategy: int, wbits: int) -> Setting:
    """The i-th setting of a matrix: memLevel cycles 1..9, a dictionary every other time (not in gzip)."""
    with_dict = i % 2 == 1 and wbits <= 15  # zlib allows no preset dictionary in a gzip stream
    return Setting(level, wbits, MEM_LEVELS[i % len(MEM_LEVELS)], strategy, with_dict)


def _matrix() -> list[Setting]:
    """Every (level, strategy, framing) triple, and each wbits and the default level on its own."""
    settings = [Setting(level=-1)] + [Setting(wbits=v) for v in WBITS]
    triples = itertools.product(range(10), STRATEGIES, FRAMINGS)
    return settings + [_setting(i, *triple) for i, triple in enumerate(triples)]


def _covering_sample() -> list[Setting]:
    """Every (level, strategy) pair, framing (level + strategy) mod 4: all pairs of the three factors occur."""
    settings = [Setting(level=-1)] + [Setting(wbits=v) for v in WBITS]
    pairs = itertools.product(range(10), STRATEGIES)
    sample = [
        _setting(i, level, strategy, FRAMINGS[(level + strategy) % 4]) for i, (level, strategy) in enumerate(pairs)
    ]
    return settings + sample


MATRIX = _matrix()
SAMPLE = _covering_sample()


@pytest.fixture(scope="module")
def sample(canterbury: dict[str, bytes]) -> bytes:
    """~10 KB mixing text, binary, code, a long run and incompressible bytes."""
    parts = [
        canterbury["alice29.txt"][5000:8000],
        canterbury["kennedy.xls"][20000:22500],
        canterbury["fields.c"][:1500],
        canterbury["ptt5"][2000:3000],
        bytes(700),
        random.Random(3).randbytes(1200),
    ]
    return b"".join(parts)


def dictionary_for(data: bytes) -> bytes:
    return data[3000:4000] + b"the quick brown fox"


def ours_compress(data: bytes, s: Setting, zdict: bytes | None, chunk: int = 4096) -> bytes:
    return compress_with(sz, data, s.level, s.wbits, s.mem_level, s.strategy, zdict, chunk)


def c_compress(data: bytes, s: Setting, zdict: bytes | None) -> bytes:
    return compress_with(c_zlib, data, s.level, s.wbits, s.mem_level, s.strategy, zdict)


def test_sample_covers_every_pair_of_factors() -> None:
    for first, second in ((0, 3), (0, 1), (3, 1)):  # (level, strategy), (level, wbits), (strategy, wbits)
        pairs = {(s[first], s[second]) for s in SAMPLE[len(WBITS) + 1 :]}
        assert pairs == {(m[first], m[second]) for m in MATRIX[len(WBITS) + 1 :]}
    assert {s.mem_level for s in SAMPLE} == set(MEM_LEVELS)
    assert {(s.level, s.with_dict) for s in SAMPLE if s.wbits != 31} >= {(level, True) for level in range(10)}


@pytest.mark.parametrize("setting", SAMPLE, ids=str)
def test_c_zlib_reads_our_stream(sample: bytes, setting: Setting) -> None:
    zdict = dictionary_for(sample) if setting.with_dict else None
    for data in (sample, sample[:300], b""):
        assert decompress_whole(c_zlib, ours_compress(data, setting, zdict), setting.wbits, zdict) == data


@pytest.mark.parametrize("setting", MATRIX, ids=str)
def test_we_read_c_zlibs_stream(sample: bytes, setting: Setting) -> None:
    zdict = dictionary_for(sample) if setting.with_dict else None
    for data in (sample, sample[:300], b""):
        assert decompress_whole(sz, c_compress(data, setting, zdict), setting.wbits, zdict) == data


def test_random_data_at_every_level_and_framing() -> None:
    rng = random.Random(1951)
    for level, wbits in itertools.product(range(10), (15, -15, 31)):
        data = rng.randbytes(rng.randrange(1, 5000))
        out = sz.compress(data, level, wbits)
        assert c_zlib.decompress(out, wbits) == data
        assert len(out) <= len(data) + 40  # incompressible input goes out stored, not inflated


def test_long_input_slides_the_window(canterbury: dict[str, bytes]) -> None:
    """Several windows of input in one call, then across small calls: the window slides."""
    data = canterbury["lcet10.txt"][:200_000]
    for wbits in (9, 15):
        setting = Setting(level=4, wbits=wbits)
        assert c_zlib.decompress(ours_compress(data, setting, None, chunk=len(data)), wbits) == data
        assert c_zlib.decompress(ours_compress(data, setting, None, chunk=7919), wbits) == data


@pytest.mark.slow
def test_whole_corpus_level_6_ratio_within_2_percent_of_c_zlib(canterbury: dict[str, bytes]) -> None:
    ours_total = c_total = 0
    for name, data in canterbury.items():
        ours = sz.compress(data, 6)
        assert c_zlib.decompress(ours) == data, name
        c_stream = c_zlib.compress(data, 6)
        assert sz.decompress(c_stream) == data, name
        assert len(ours) <= 1.02 * len(c_stream), (name, len(ours), len(c_stream))
        ours_total += len(ours)
        c_total += len(c_stream)
    assert ours_total <= 1.02 * c_total


@pytest.mark.slow
def test_whole_files_level_1_gzip(canterbury: dict[str, bytes]) -> None:
    for name in ("asyoulik.txt", "ptt5", "sum"):
        data = canterbury[name]
        ours = sz.compress(data, 1, 31)
        assert c_zlib.decompress(ours, 31) == data, name
        assert sz.decompress(c_zlib.compress(data, 1, 31), 31) == data, name
