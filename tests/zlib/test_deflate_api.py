"""compress() and compressobj() behave as CPython's, byte for byte where zlib's output is fixed.

Each named case is a small program run on CPython's zlib (C zlib 1.2.13) and on
spore.zlib; what it returns or raises (type and message) must be the same.
That covers argument validation, the stream headers zlib writes for every
level, strategy and wbits, the exact bits of flush markers and empty blocks,
the "nothing to flush" rule, errors after Z_FINISH with zlib's sticky message,
and copy().
"""

from __future__ import annotations

import copy
import zlib as c_zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import spore.zlib as sz


def outcome(program: Callable[[ModuleType], Any], z: ModuleType) -> tuple[Any, ...]:
    try:
        return ("ok", program(z))
    except Exception as exc:  # the type and text are what is compared
        kind = "zlib.error" if isinstance(exc, z.error) else type(exc).__name__
        return ("raised", kind, str(exc))


def same_on_both(program: Callable[[ModuleType], Any]) -> tuple[Any, ...]:
    expected = outcome(program, c_zlib)
    assert outcome(program, sz) == expected
    return expected


# --- argument validation -------------------------------------------------------------

BAD_ARGUMENTS: list[tuple[str, Callable[[ModuleType], Any], str, str]] = [
    # (name, program, exception, message) -- the message is CPython 3.11's
    ("compress level -2", lambda z: z.compress(b"a", -2), "zlib.error", "Bad compression level"),
    ("compress level 10", lambda z: z.compress(b"a", 10), "zlib.error", "Bad compression level"),
    ("compress wbits 7", lambda z: z.compress(b"a", 6, 7), "zlib.error", "Bad compression level"),
    ("compress raw wbits -8", lambda z: z.compress(b"a", wbits=-8), "zlib.error", "Bad compression level"),
    ("compress gzip wbits 24", lambda z: z.compress(b"a", wbits=24), "zlib.error", "Bad compression level"),
    ("compress wbits 16", lambda z: z.compress(b"a", wbits=16), "zlib.error", "Bad compression level"),
    ("compress wbits 0", lambda z: z.compress(b"a", wbits=0), "zlib.error", "Bad compression level"),
    ("compress wbits -16", lambda z: z.compress(b"a", wbits=-16), "zlib.error", "Bad compression level"),
    ("compress wbits 32", lambda z: z.compress(b"a", wbits=32), "zlib.error", "Bad compression level"),
    ("compress str", lambda z: z.compress("a"), "TypeError", "a bytes-like object is required, not 'str'"),
    ("compress None", lambda z: z.compress(None), "TypeError", "a bytes-like object is required, not 'NoneType'"),
    (
        "compress level str",
        lambda z: z.compress(b"a", "6"),
        "TypeError",
        "'str' object cannot be interpreted as an integer",
    ),
    (
        "compress level float",
        lambda z: z.compress(b"a", 1.5),
        "TypeError",
        "'float' object cannot be interpreted as an integer",
    ),
    (
        "compress level beyond C int",
        lambda z: z.compress(b"a", 2**31),
        "OverflowError",
        "Python int too large to convert to C int",
    ),
    (
        "compress strided view",
        lambda z: z.compress(memoryview(b"abcd")[::2]),
        "BufferError",
        "memoryview: underlying buffer is not C-contiguous",
    ),
    ("compressobj level -2", lambda z: z.compressobj(-2), "ValueError", "Invalid initialization option"),
    ("compressobj level 10", lambda z: z.compressobj(10), "ValueError", "Invalid initialization option"),
    ("compressobj method 9", lambda z: z.compressobj(method=9), "ValueError", "Invalid initialization option"),
    ("compressobj wbits 7", lambda z: z.compressobj(wbits=7), "ValueError", "Invalid initialization option"),
    ("compressobj wbits -8", lambda z: z.compressobj(wbits=-8), "ValueError", "Invalid initialization option"),
    ("compressobj wbits 24", lambda z: z.compressobj(wbits=24), "ValueError", "Invalid initialization option"),
    ("compressobj wbits 32", lambda z: z.compressobj(wbits=32), "ValueError", "Invalid initialization option"),
    ("compressobj memLevel 0", lambda z: z.compressobj(memLevel=0), "ValueError", "Invalid initialization option"),
    ("compressobj memLevel 10", lambda z: z.compressobj(memLevel=10), "ValueError", "Invalid initialization option"),
    ("compressobj strategy -1", lambda z: z.compressobj(strategy=-1), "ValueError", "Invalid initialization option"),
    ("compressobj strategy 5", lambda z: z.compressobj(strategy=5), "ValueError", "Invalid initialization option"),
    ("compressobj gzip zdict", lambda z: z.compressobj(wbits=31, zdict=b"ab"), "ValueError", "Invalid dictionary"),
    (
        "compressobj gzip empty zdict",
        lambda z: z.compressobj(wbits=31, zdict=b""),
        "ValueError",
        "Invalid dictionary",
    ),
    (
        "compressobj zdict None",
        lambda z: z.compressobj(zdict=None),
        "TypeError",
        "a bytes-like object is required, not 'NoneType'",
    ),
    (
        "compressobj zdict str",
        lambda z: z.compressobj(zdict="ab"),
        "TypeError",
        "a bytes-like object is required, not 'str'",
    ),
    (
        "compressobj types before ranges",
        lambda z: z.compressobj(level=10, zdict="y"),
        "TypeError",
        "a bytes-like object is required, not 'str'",
    ),
    (
        "compressobj level str",
        lambda z: z.compressobj("x"),
        "TypeError",
        "'str' object cannot be interpreted as an integer",
    ),
    (
        "flush mode beyond C int",
        lambda z: z.compressobj().flush(2**31),
        "OverflowError",
        "Python int too large to convert to C int",
    ),
    (
        "flush mode str",
        lambda z: z.compressobj().flush("x"),
        "TypeError",
        "'str' object cannot be interpreted as an integer",
    ),
    (
        "flush Z_TREES",
        lambda z: z.compressobj().flush(z.Z_TREES),
        "zlib.error",
        "Error -2 while flushing: inconsistent stream state",
    ),
    (
        "flush mode -1",
        lambda z: z.compressobj().flush(-1),
        "zlib.error",
        "Error -2 while flushing: inconsistent stream state",
    ),
    (
        "compressobj.compress str",
        lambda z: z.compressobj().compress("x"),
        "TypeError",
        "a bytes-like object is required, not 'str'",
    ),
]


@pytest.mark.parametrize(("name", "program", "kind", "message"), BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
def test_bad_arguments_raise_what_cpython_raises(
    name: str, program: Callable[[ModuleType], Any], kind: str, message: str
) -> None:
    assert same_on_both(program) == ("raised", kind, message)


GOOD_ARGUMENTS: list[tuple[str, Callable[[ModuleType], Any]]] = [
    ("wbits 8 is a zlib stream with a 512-byte window", lambda z: z.compress(b"abcabc", 6, 8)),
    ("compressobj wbits 8 with zdict", lambda z: z.compressobj(wbits=8, zdict=b"x").flush()),
    ("empty zdict is no dictionary", lambda z: z.compressobj(zdict=b"").flush()),
    ("zdict as bytearray", lambda z: z.compressobj(zdict=bytearray(b"hello")).flush()),
    ("raw stream with zdict has no dictid", lambda z: z.compressobj(wbits=-15, zdict=b"hello").flush()),
    ("level True", lambda z: z.compress(bytearray(b"abcd"), level=True)),
    ("array data", lambda z: z.compress(__import__("array").array("I", [1, 2]))),
    ("keywords", lambda z: z.compressobj(level=1, method=8, wbits=-9, memLevel=1, strategy=4).flush()),
]


@pytest.mark.parametrize(("name", "program"), GOOD_ARGUMENTS, ids=[c[0] for c in GOOD_ARGUMENTS])
def test_accepted_arguments_give_cpythons_bytes(name: str, program: Callable[[ModuleType], Any]) -> None:
    assert same_on_both(program)[0] == "ok"


# --- headers and empty streams: fixed by zlib, so byte-exact ---------------------------


@pytest.mark.parametrize("wbits", [8, 9, 10, 12, 15, -9, -12, -15, 25, 28, 31])
@pytest.mark.parametrize("level", [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_empty_input_is_byte_identical(level: int, wbits: int) -> None:
    assert sz.compress(b"", level, wbits) == c_zlib.compress(b"", level, wbits)


@pytest.mark.parametrize("strategy", range(5))
@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("wbits", [15, 31, -15])
def test_header_and_empty_stream_for_every_strategy(level: int, strategy: int, wbits: int) -> None:
    """zlib's FLEVEL (zlib) and XFL (gzip) depend on level and strategy; the empty stream is fixed."""
    ours = sz.compressobj(level, sz.DEFLATED, wbits, 8, strategy).flush()
    assert ours == c_zlib.compressobj(level, c_zlib.DEFLATED, wbits, 8, strategy).flush()


def test_preset_dictionary_header_carries_fdict_and_dictid() -> None:
    zdict = bytes(range(256)) * 200  # longer than the window: dictid is of the whole of it
    ours = sz.compressobj(zdict=zdict).flush()
    assert ours == c_zlib.compressobj(zdict=zdict).flush()
    assert ours[1] & 0x20 and int.from_bytes(ours[2:6], "big") == c_zlib.adler32(zdict)


# --- flush semantics -----------------------------------------------------------------

Z = sz  # the flush constants are the same numbers in both modules


def session(*calls: tuple[str, Any]) -> Callable[[ModuleType], list[Any]]:
    """A program: compressobj() then ("c", data) for compress, ("f", mode) for flush, logging each result."""

    def program(z: ModuleType) -> list[Any]:
        co = z.compressobj()
        log: list[Any] = []
        for op, arg in calls:
            try:
                log.append(co.compress(arg) if op == "c" else co.flush(arg))
            except z.error as exc:
                log.append(("zlib.error", str(exc)))
        return log

    return program


FLUSH_SESSIONS: list[tuple[str, Callable[[ModuleType], Any]]] = [
    ("compress empty gives the header", session(("c", b""))),
    ("sync flush on nothing: empty stored block", session(("f", Z.Z_SYNC_FLUSH), ("f", Z.Z_FINISH))),
    (
        "a repeated flush sends nothing",
        session(("f", Z.Z_SYNC_FLUSH), ("f", Z.Z_SYNC_FLUSH), ("f", Z.Z_FULL_FLUSH), ("f", Z.Z_SYNC_FLUSH)),
    ),
    (
        "compress(b'') re-arms the flush",
        session(("f", Z.Z_SYNC_FLUSH), ("c", b""), ("f", Z.Z_SYNC_FLUSH), ("f", Z.Z_FINISH)),
    ),
    (
        "partial flush: empty fixed block, bits held back",
        session(("c", b"a"), ("f", Z.Z_PARTIAL_FLUSH), ("c", b"b"), ("f", Z.Z_PARTIAL_FLUSH), ("f", Z.Z_FINISH)),
    ),
    (
        "Z_BLOCK ends the block only",
        session(("c", b"a"), ("f", Z.Z_BLOCK), ("c", b"b"), ("f", Z.Z_BLOCK), ("f", Z.Z_FINISH)),
    ),
    (
        "flush ranks: Z_BLOCK is weaker than partial",
        session(
            ("c", b"abc"),
            ("f", Z.Z_BLOCK),
            ("f", Z.Z_BLOCK),
            ("f", Z.Z_PARTIAL_FLUSH),
            ("f", Z.Z_PARTIAL_FLUSH),
            ("f", Z.Z_FULL_FLUSH),
            ("f", Z.Z_SYNC_FLUSH),
            ("f", Z.Z_FULL_FLUSH),
            ("f", Z.Z_FINISH),
        ),
    ),
    ("Z_NO_FLUSH flush is a no-op", session(("c", b"hello"), ("f", Z.Z_NO_FLUSH), ("f", Z.Z_FINISH))),
    (
        "full flush forgets history",
        session(("c", b"abcabc"), ("f", Z.Z_FULL_FLUSH), ("c", b"abcabc"), ("f", Z.Z_FINISH)),
    ),
    (
        "after Z_FINISH: errors, flush(Z_NO_FLUSH) still b''",
        session(("c", b"abc"), ("f", Z.Z_FINISH), ("c", b"a"), ("f", Z.Z_FINISH), ("f", Z.Z_NO_FLUSH)),
    ),
    (
        "the sticky 'buffer error' message",
        session(("c", b"abc"), ("c", b""), ("f", 7), ("f", Z.Z_FINISH), ("c", b"x")),
    ),
    ("invalid mode leaves the stream usable", session(("c", b"abc"), ("f", 6), ("f", Z.Z_FINISH))),
]


@pytest.mark.parametrize(("name", "program"), FLUSH_SESSIONS, ids=[c[0] for c in FLUSH_SESSIONS])
def test_flush_sessions_are_byte_identical(name: str, program: Callable[[ModuleType], Any]) -> None:
    assert same_on_both(program)[0] == "ok"


def test_level_0_stored_blocks_follow_the_flushes() -> None:
    def program(z: ModuleType) -> list[bytes]:
        co = z.compressobj(0)
        return [co.compress(b"a"), co.flush(z.Z_BLOCK), co.compress(b"b"), co.flush(z.Z_SYNC_FLUSH), co.flush()]

    same_on_both(program)


def test_copy_after_finish_and_copy_protocols() -> None:
    def program(z: ModuleType) -> tuple[Any, ...]:
        co = z.compressobj()
        head = co.compress(b"abc" * 100)
        twin, shallow, deep = co.copy(), copy.copy(co), copy.deepcopy(co)
        outs = [head + c.compress(b"xyz") + c.flush() for c in (co, twin, shallow, deep)]
        try:
            co.copy()
        except ValueError as exc:
            return (*outs, str(exc))
        return tuple(outs)

    result = same_on_both(program)
    assert result[1][-1] == "Inconsistent stream state"
    assert len(set(result[1][:4])) == 1
    assert c_zlib.decompress(result[1][0]) == b"abc" * 100 + b"xyz"


def test_a_copy_continues_independently() -> None:
    co = sz.compressobj(6)
    head = co.compress(b"the quick brown fox " * 50)
    twin = co.copy()
    a = head + co.compress(b"jumps over") + co.flush()
    b = head + twin.compress(b"the lazy dog" * 20) + twin.flush(sz.Z_SYNC_FLUSH) + twin.flush()
    assert c_zlib.decompress(a) == b"the quick brown fox " * 50 + b"jumps over"
    assert c_zlib.decompress(b) == b"the quick brown fox " * 50 + b"the lazy dog" * 20


def test_compressor_type_is_neither_instantiable_nor_picklable() -> None:
    import pickle

    with pytest.raises(TypeError, match=r"cannot create '.*Compress' instances"):
        type(sz.compressobj())()
    assert same_on_both(lambda z: pickle.dumps(z.compressobj())) == (
        "raised",
        "TypeError",
        "cannot pickle 'zlib.Compress' object",
    )
