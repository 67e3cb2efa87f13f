"""Shared machinery for the spore.zlib tests: outcomes, API sessions, C zlib streams, round trips.

An *outcome* is what one decompressor does with one input, reduced to a value
that two implementations can be compared on. A *session* is a sequence of API
calls (decompress with chunk sizes and max_length, flush, copy) replayed on two
modules in lockstep, logging everything a caller can observe.
"""

from __future__ import annotations

import json
import random
import zlib as c_zlib
from pathlib import Path
from types import ModuleType
from typing import Any

from spore.zlib import spec
from spore.zlib.inflate import DATA_ERROR, NEED_DICT, NEED_INPUT, STREAM_END, Inflater

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"  # the checkout is <work>/main, shared is <work>/shared
VECTORS = SHARED / "vectors" / "infcover.json"
CANTERBURY = SHARED / "corpora" / "canterbury"

Outcome = tuple[Any, ...]


def zdict_keyword(zdict: bytes | None) -> dict[str, bytes]:
    """The ``zdict`` keyword for (de)compressobj: omitted for no dictionary, as CPython rejects ``zdict=None``."""
    return {} if zdict is None else {"zdict": zdict}


def load_infcover_vectors() -> list[dict[str, Any]]:
    """zlib test/infcover.c's vectors with C zlib's recorded behaviour ([] if absent)."""
    if not VECTORS.is_file():
        return []
    return json.loads(VECTORS.read_text())["vectors"]


def fast_outcome(data: bytes, wbits: int, zdict: bytes | None = None) -> Outcome:
    """What the fast decoder (the Inflater engine, one output buffer) does with ``data``, as a value.

    ("ok", output, unused) at end of stream; ("incomplete", output) when the
    input ran out; ("error", message) for a malformed stream (zlib's text);
    ("need-dict",) and ("wrong-dict",) for the preset-dictionary failures.
    The engine is driven as decompressobj drives it, minus CPython's output
    buffering (which only matters for distances beyond a small window; the
    API-level tests compare that against C zlib).
    """
    parsed = spec.parse_wbits(wbits)
    assert parsed is not None, wbits
    engine = Inflater(*parsed)
    if zdict is not None and parsed[0] == "raw":
        engine.set_dictionary(zdict)
    output, status, consumed = engine.run(data, None)
    if status == NEED_DICT:
        if zdict is None:
            return ("need-dict",)
        if not engine.set_dictionary(zdict):
            return ("wrong-dict",)
        output, status, more = engine.run(data[consumed:], None)
        consumed += more
    if status == DATA_ERROR:
        return ("error", engine.message)
    if status == STREAM_END:
        return ("ok", output, data[consumed:])
    assert status == NEED_INPUT, status
    return ("incomplete", output)


def api_outcome(data: bytes, wbits: int, zdict: bytes | None = None) -> Outcome:
    """The same, through spore.zlib.decompressobj(wbits, zdict).decompress(data)."""
    import spore.zlib as sz

    d = sz.decompressobj(wbits, **zdict_keyword(zdict))
    try:
        output = d.decompress(data)
    except sz.error as exc:
        text = str(exc)
        if text == "Error 2 while decompressing data":
            return ("need-dict",)
        if text == "Error -3 while setting zdict: invalid input data":
            return ("wrong-dict",)
        prefix = "Error -3 while decompressing data: "
        assert text.startswith(prefix), text
        return ("error", text[len(prefix) :])
    if d.eof:
        return ("ok", output, d.unused_data)
    return ("incomplete", output)


def spec_outcome(data: bytes, wbits: int, zdict: bytes | None = None) -> Outcome:
    """What the reference decoder spore.zlib.spec does with the same input."""
    try:
        output, unused = spec.decompress(data, wbits, zdict)
    except spec.IncompleteStream as exc:
        return ("incomplete", exc.output)
    except spec.NeedDictionary:
        return ("need-dict",)
    except spec.WrongDictionary:
        return ("wrong-dict",)
    except spec.InflateError as exc:
        return ("error", exc.message)
    return ("ok", output, unused)


# --- sessions ------------------------------------------------------------------

Op = tuple[Any, ...]


def run_session(
    module: ModuleType, data: bytes, wbits: int, ops: list[Op], zdict: bytes | None = None
) -> list[tuple[Any, ...]]:
    """Replay ``ops`` on module.decompressobj; log each call's result and the attributes.

    ops: ("decompress", n, max_length, prepend_tail) feeds the next n input bytes
    (after unconsumed_tail if prepend_tail); ("flush",); ("copy",) continues on a copy.
    """
    log: list[tuple[Any, ...]] = []
    try:
        d = module.decompressobj(wbits, **zdict_keyword(zdict))
    except Exception as exc:  # compared, not hidden: both modules must raise alike
        return [("init", type(exc).__name__, str(exc))]
    pos = 0
    for op in ops:
        try:
            if op[0] == "decompress":
                _, n, max_length, prepend_tail = op
                chunk = data[pos : pos + n]
                pos += n
                if prepend_tail:
                    chunk = d.unconsumed_tail + chunk
                result: Any = d.decompress(chunk, max_length)
                assert max_length == 0 or len(result) <= max_length
            elif op[0] == "flush":
                result = d.flush()
            else:
                d = d.copy()
                result = b""
            log.append((op[0], result, d.eof, d.unused_data, d.unconsumed_tail))
        except Exception as exc:  # compared, not hidden
            log.append((op[0], type(exc).__name__, str(exc), d.eof, d.unused_data, d.unconsumed_tail))
    return log


def random_ops(rng: random.Random, input_length: int) -> list[Op]:
    """A random session covering input_length (+ a little), ending with flush."""
    ops: list[Op] = []
    fed = 0
    while fed < input_length + 5:
        n = rng.choice([1, 2, 7, 64, 1000, 100000])
        ops.append(("decompress", n, rng.choice([0, 0, 1, 3, 100, 1000, 40000]), rng.random() < 0.8))
        fed += n
        if rng.random() < 0.05:
            ops.append(("copy",))
    ops += [("decompress", 0, rng.choice([0, 5]), True)] * rng.randrange(3)
    ops.append(("flush",))
    if rng.random() < 0.3:  # use after the end: the corners CPython defines
        ops += [("decompress", 3, 0, False), ("flush",), ("copy",)]
    return ops


# --- streams from C zlib ---------------------------------------------------------

FLUSH_MODES = (c_zlib.Z_SYNC_FLUSH, c_zlib.Z_FULL_FLUSH, c_zlib.Z_PARTIAL_FLUSH, c_zlib.Z_BLOCK)


def random_payload(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 10, 100, 1000, 5000, 40000, 70000])
    kind = rng.random()
    if kind < 0.3:
        return rng.randbytes(n)
    if kind < 0.6:
        return bytes(rng.choice(b"ab ") for _ in range(n))
    return (b"the quick brown fox " * (n // 20 + 1))[:n]


def c_zlib_stream(rng: random.Random, data: bytes, wbits: int, zdict: bytes | None = None) -> bytes:
    """``data`` compressed by C zlib with random level, memLevel, strategy and flushes."""
    co = c_zlib.compressobj(
        rng.randrange(-1, 10),
        c_zlib.DEFLATED,
        wbits,
        rng.randrange(1, 10),
        rng.randrange(5),
        **zdict_keyword(zdict),
    )
    pieces = []
    i = 0
    while i < len(data):
        k = rng.randrange(1, 20000)
        pieces.append(co.compress(data[i : i + k]))
        i += k
        if rng.random() < 0.3:
            pieces.append(co.flush(rng.choice(FLUSH_MODES)))
    pieces.append(co.flush())
    return b"".join(pieces)


def random_c_zlib_case(rng: random.Random) -> tuple[bytes, int, bytes | None, bytes]:
    """(stream, wbits to decode it with, zdict, payload) over framings, windows and dictionaries."""
    data = random_payload(rng)
    wbits = rng.choice([15, 9, 12, -15, -9, 31, 25])
    zdict = None
    if 0 < wbits < 16 and rng.random() < 0.2:
        zdict = rng.randbytes(rng.randrange(1, 300)) + data[:100]
    stream = c_zlib_stream(rng, data, wbits, zdict)
    decode_wbits = wbits
    if rng.random() < 0.3:  # the same stream read with header-driven or automatic framing
        decode_wbits = {15: rng.choice([0, 47]), 31: 47, 25: rng.choice([31, 41])}.get(wbits, wbits)
    return stream, decode_wbits, zdict, data


def mutate(rng: random.Random, stream: bytes) -> bytes:
    """Flip bits, truncate or append junk: the damage a hostile or broken channel does."""
    damaged = bytearray(stream)
    r = rng.random()
    if r < 0.4 and damaged:
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    elif r < 0.6 and damaged:
        damaged = damaged[: rng.randrange(len(damaged))]
    elif r < 0.8:
        damaged += rng.randbytes(rng.randrange(1, 20))
    return bytes(damaged)


# --- whole streams through either module's API -----------------------------------


def compress_with(
    module: ModuleType,
    data: bytes,
    level: int = -1,
    wbits: int = 15,
    mem_level: int = 8,
    strategy: int = 0,
    zdict: bytes | None = None,
    chunk: int | None = None,
) -> bytes:
    """``data`` through module.compressobj(...), fed ``chunk`` bytes at a time (all at once if None), finished."""
    co = module.compressobj(level, module.DEFLATED, wbits, mem_level, strategy, **zdict_keyword(zdict))
    step = chunk or max(len(data), 1)
    return b"".join(co.compress(data[i : i + step]) for i in range(0, len(data), step)) + co.flush()


def decompress_whole(module: ModuleType, stream: bytes, wbits: int, zdict: bytes | None = None) -> bytes:
    """module.decompressobj(wbits, zdict) on one complete stream; checks that it ends exactly where the bytes do."""
    d = module.decompressobj(wbits, **zdict_keyword(zdict))
    out = d.decompress(stream) + d.flush()
    assert d.eof and d.unused_data == b""
    return out


def read_in_limited_pieces(d: Any, stream: bytes, max_length: int, calls: int) -> bytes:
    """Feed ``stream``, then its unconsumed_tail back, ``max_length`` at a time, until eof or ``calls`` calls.

    Every piece must respect the limit; the caller checks eof and the output.
    """
    pieces, tail = [], stream
    for _ in range(calls):
        piece = d.decompress(tail, max_length)
        assert len(piece) <= max_length
        pieces.append(piece)
        tail = d.unconsumed_tail
        if d.eof:
            break
    return b"".join(pieces)
