"""The zlib module surface behaves as CPython's, corner for corner.

Each named case is a small program run twice, once on CPython's zlib (C zlib
1.2.13) and once on spore.zlib; what it returns or raises (type and message)
must be the same. Then random sessions of decompress/flush/copy calls, with
random chunking and max_length over streams C zlib wrote (and damaged copies),
are replayed on both modules in lockstep and every observable compared.
"""

from __future__ import annotations

import copy
import pickle
import random
import sys
import zlib as c_zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from zlib_harness import mutate, random_c_zlib_case, random_ops, run_session

import spore.zlib as sz

HELLO = c_zlib.compress(b"hello world" * 10)
FOO = b"x\x9cK\xcb\xcf\x07\x00\x02\x82\x01E"  # 'foo', from CPython's test_zlib
DICT = b"abcdefgh" * 10
_co = c_zlib.compressobj(zdict=DICT)
WITH_DICT = _co.compress(b"abcdefgh" * 20) + _co.flush()


def _tail_after_max_length(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    first = d.decompress(HELLO + b"XYZ", 5)
    rest = d.decompress(d.unconsumed_tail)
    more = d.decompress(b"QQ")
    return first, rest, d.eof, d.unused_data, d.unconsumed_tail, more


def _after_flush_end(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    d.decompress(HELLO)
    flushed = d.flush()
    try:
        d.decompress(b"abc")
    except z.error as exc:
        err = str(exc)
    return flushed, err, d.unused_data, d.unconsumed_tail, d.flush(), d.eof


def _error_then_again(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj(-15)
    seen = []
    for data in (b"\x06xyz", b"abc"):
        try:
            d.decompress(data)
        except z.error as exc:
            seen.append((str(exc), d.unconsumed_tail))
    return (*seen, d.flush(), d.unconsumed_tail)


def _need_dict_tail(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    with pytest.raises(z.error) as info:
        d.decompress(WITH_DICT)
    return str(info.value), d.unconsumed_tail, d.unused_data


def _exact_fill(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    return d.decompress(c_zlib.compress(b"abc") + b"ZZ", 3), d.eof, d.unused_data


def _copy_is_independent(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    head = d.decompress(HELLO[:7])
    e = d.copy()
    return head, d.decompress(HELLO[7:]), e.decompress(HELLO[7:] + b"!"), e.unused_data


def _flush_with_tail(z: ModuleType) -> tuple[Any, ...]:
    d = z.decompressobj()
    d.decompress(HELLO + b"ZZ", 1)
    return d.flush(), d.eof, d.unused_data, d.unconsumed_tail


def _copy_after_end(d: Any) -> Any:
    return d.decompress(HELLO), d.flush(), d.copy()


CASES: dict[str, Callable[[ModuleType], Any]] = {
    "decompress empty input": lambda z: z.decompress(b""),
    "decompress truncated": lambda z: z.decompress(FOO[:-1]),
    "decompress ignores trailing junk": lambda z: z.decompress(HELLO + b"junk"),
    "decompress gzip, trailing junk": lambda z: z.decompress(c_zlib.compress(b"a", wbits=31) + b"j", 31),
    "decompress needs dictionary": lambda z: z.decompress(WITH_DICT),
    "decompress needs dictionary, auto": lambda z: z.decompress(WITH_DICT, 47),
    "decompress bad wbits": lambda z: z.decompress(HELLO, 1),
    "decompress wbits header too big": lambda z: z.decompress(HELLO, 14),
    "decompress wbits 0 from header": lambda z: z.decompress(HELLO, 0),
    "decompress negative bufsize": lambda z: z.decompress(HELLO, 15, -1),
    "decompress zero bufsize": lambda z: z.decompress(HELLO, wbits=15, bufsize=0),
    "decompress huge bufsize": lambda z: z.decompress(HELLO, 15, sys.maxsize + 1),
    "decompress str": lambda z: z.decompress("abc"),
    "decompress None": lambda z: z.decompress(None),
    "decompress float wbits": lambda z: z.decompress(HELLO, 15.0),
    "decompress data keyword": lambda z: z.decompress(data=HELLO),
    "decompress bytearray": lambda z: z.decompress(bytearray(HELLO)),
    "decompress memoryview": lambda z: z.decompress(memoryview(HELLO)),
    "decompressobj wbits 48": lambda z: z.decompressobj(48),
    "decompressobj wbits -1": lambda z: z.decompressobj(-1),
    "decompressobj wbits 7": lambda z: z.decompressobj(7),
    "decompressobj wbits -16": lambda z: z.decompressobj(-16),
    "decompressobj wbits 2**40": lambda z: z.decompressobj(2**40),
    "decompressobj zdict str": lambda z: z.decompressobj(zdict="abc"),
    "decompressobj zdict None": lambda z: z.decompressobj(zdict=None),
    "decompressobj wrong zdict": lambda z: z.decompressobj(zdict=b"xyz").decompress(WITH_DICT),
    "decompressobj right zdict": lambda z: z.decompressobj(zdict=DICT).decompress(WITH_DICT),
    "decompressobj bytearray zdict": lambda z: z.decompressobj(zdict=bytearray(DICT)).decompress(WITH_DICT),
    "decompressobj raw with empty zdict": lambda z: z.decompressobj(-15, zdict=b"").decompress(b"\x03\x00"),
    "max_length negative": lambda z: z.decompressobj().decompress(b"", -1),
    "max_length huge": lambda z: z.decompressobj().decompress(b"", sys.maxsize + 1),
    "max_length sys.maxsize": lambda z: z.decompressobj().decompress(HELLO, sys.maxsize),
    "max_length keyword": lambda z: z.decompressobj().decompress(HELLO, max_length=4),
    "flush length 0": lambda z: z.decompressobj().flush(0),
    "flush length -1": lambda z: z.decompressobj().flush(-1),
    "flush length huge": lambda z: z.decompressobj().flush(sys.maxsize + 1),
    "flush unused object": lambda z: z.decompressobj().flush(),
    "flush incomplete stream": lambda z: (lambda d: (d.decompress(FOO[:-5]), d.flush(), d.eof))(z.decompressobj()),
    "instantiate Decompress type": lambda z: type(z.decompressobj())(),
    "copy after flush ended the stream": lambda z: _copy_after_end(z.decompressobj()),
    "crc32 no args": lambda z: z.crc32(),
    "crc32 str": lambda z: z.crc32("abc"),
    "crc32 float start": lambda z: z.crc32(b"", 1.5),
    "crc32 negative start": lambda z: z.crc32(b"a", -1),
    "crc32 huge start": lambda z: z.crc32(b"a", 2**40 + 5),
    "adler32 huge start": lambda z: z.adler32(b"a", 2**40),
    "adler32 unreduced start, one byte": lambda z: z.adler32(b"\xff", 0xFFFFFEF1),
    "adler32 unreduced start, empty": lambda z: z.adler32(b"", 0xFFFFFFFF),
    "checksums of non-byte buffers": lambda z: (z.crc32(memoryview(b"abcd").cast("I")), z.adler32(bytearray(b"xy"))),
    "unconsumed_tail then eof (CPython's tail quirk)": _tail_after_max_length,
    "use after flush ended the stream": _after_flush_end,
    "error is sticky": _error_then_again,
    "need dictionary keeps the tail": _need_dict_tail,
    "max_length exactly the output reaches eof": _exact_fill,
    "copy is independent": _copy_is_independent,
    "flush sends leftovers to unused_data and unconsumed_tail": _flush_with_tail,
    # Argument Clinic's words for keywords and missing arguments (issue 13)
    "decompress no args": lambda z: z.decompress(),
    "decompress data twice": lambda z: z.decompress(HELLO, data=HELLO),
    "decompress unknown keyword": lambda z: z.decompress(HELLO, level=1),
    "compress data keyword": lambda z: z.compress(data=b"abc"),
    "Decompress.decompress data keyword": lambda z: z.decompressobj().decompress(data=HELLO),
    "Decompress.decompress no args": lambda z: z.decompressobj().decompress(),
    "Decompress.flush length keyword": lambda z: z.decompressobj().flush(length=5),
    "Compress.compress data keyword": lambda z: z.compressobj().compress(data=b"abc"),
    "Compress.compress data twice": lambda z: z.compressobj().compress(b"abc", data=b"abc"),
    "Compress.flush mode keyword": lambda z: z.compressobj().flush(mode=2),
    "crc32 data keyword": lambda z: z.crc32(data=b"abc"),
    "adler32 value keyword": lambda z: z.adler32(b"abc", value=1),
    "adler32 no args": lambda z: z.adler32(),
    "pickle Decompress": lambda z: pickle.dumps(z.decompressobj()),
}  # fmt: skip


def _behaviour(name: str, module: ModuleType) -> tuple[Any, ...]:
    try:
        result = CASES[name](module)
    except Exception as exc:  # the type and text are what is compared
        text = str(exc).replace("spore.zlib.Decompress", "zlib.Decompress")
        return ("raises", type(exc).__name__, text)
    return ("returns", _plain(result))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if type(value).__name__ == "Decompress":
        return "<Decompress>"
    return value


@pytest.mark.parametrize("name", list(CASES))
def test_behaves_as_cpython_zlib(name: str) -> None:
    assert _behaviour(name, sz) == _behaviour(name, c_zlib)


def test_constants_match_cpython() -> None:
    names = [n for n in dir(c_zlib) if n.isupper() or n.startswith("Z_")]
    assert {n: getattr(sz, n) for n in names} == {n: getattr(c_zlib, n) for n in names}
    assert issubclass(sz.error, Exception)


def test_decompressor_state_cannot_be_assigned_or_pickled() -> None:
    d = sz.decompressobj()
    for attribute in ("eof", "unused_data", "unconsumed_tail"):
        with pytest.raises(AttributeError):
            setattr(d, attribute, b"")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises((TypeError, pickle.PicklingError)):
            pickle.dumps(d, protocol)
    assert copy.copy(d).decompress(HELLO) == copy.deepcopy(d).decompress(HELLO)


SESSIONS = 120


@pytest.mark.parametrize("seed", range(SESSIONS))
def test_random_session_matches_cpython(seed: int) -> None:
    """Chunking, max_length, unconsumed_tail round trips, copy, flush: all observables agree."""
    rng = random.Random(seed)
    stream, wbits, zdict, _ = random_c_zlib_case(rng)
    if rng.random() < 0.5:
        stream = mutate(rng, stream)
    ops = random_ops(rng, len(stream))
    assert run_session(sz, stream, wbits, ops, zdict) == run_session(c_zlib, stream, wbits, ops, zdict)
