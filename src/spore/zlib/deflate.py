"""Compression with CPython's ``zlib`` API: ``compress`` and ``compressobj``.

This layer owns what the DEFLATE stream is wrapped in and when its bits come
out; lz77.py finds the matches, huffman_encode.py writes the blocks.

* Framing by ``wbits``: 9..15 zlib (RFC 1950: CMF/FLG header, FDICT and the
  dictionary's Adler-32 with a preset dictionary, Adler-32 trailer), 25..31
  gzip (RFC 1952: the header zlib writes, no name, mtime 0, OS 3; CRC-32 and
  ISIZE trailer), -9..-15 raw DEFLATE. zlib accepts 8 for a zlib stream only
  and silently uses 9 (its 256-byte window had a bug), so do we.
* Flush modes (zlib's deflate()): Z_NO_FLUSH buffers; Z_BLOCK ends the
  current block; Z_PARTIAL_FLUSH also sends an empty fixed block; Z_SYNC_FLUSH
  sends an empty stored block, which byte-aligns the output (RFC 1951 §3.2.4);
  Z_FULL_FLUSH does that and forgets the history, so decoding can restart
  there; Z_FINISH ends the stream. A flush that could not change anything
  (no input since a flush at least as strong) sends nothing, as in zlib.
* Errors and their messages are CPython's, down to the stale "buffer error"
  message zlib leaves behind after a flush that had nothing to do.
* Level 0 is stored.py's replay of zlib's deflate_stored, so its block sizes
  and the bytes each call returns are C zlib's for every wbits and memLevel.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .arguments import MISSING, bytes_view, c_int, clinic_call
from .checksum import adler32, crc32
from .constants import (
    DEF_MEM_LEVEL,
    DEFLATED,
    MAX_WBITS,
    Z_BLOCK,
    Z_DEFAULT_COMPRESSION,
    Z_DEFAULT_STRATEGY,
    Z_FINISH,
    Z_FIXED,
    Z_FULL_FLUSH,
    Z_HUFFMAN_ONLY,
    Z_NO_FLUSH,
    Z_PARTIAL_FLUSH,
    Z_SYNC_FLUSH,
)
from .errors import error
from .huffman_encode import (
    BitWriter,
    emit_block,
    emit_empty_fixed_block,
    emit_stored_block,
)
from .lz77 import Lz77
from .stored import StoredDeflate

__all__ = ["Compress", "compress", "compressobj"]

ZLIB, GZIP, RAW = "zlib", "gzip", "raw"
FEED_SIZE = 1 << 16  # input is matched in pieces this big, which bounds memory
GZIP_OS_UNIX = 3  # zlib's OS_CODE on Unix (RFC 1952 §2.3.1)
PRESET_DICT = 0x20  # RFC 1950 FLG.FDICT

_NO_DICT: Any = object()  # CPython rejects an explicit zdict=None; only omitting it means none


# --- arguments -------------------------------------------------------------------


def _framing(wbits: int) -> tuple[str, int] | None:
    """(wrapper, window bits) for a valid ``wbits``, as zlib's deflateInit2 reads it."""
    if 8 <= wbits <= MAX_WBITS:
        return ZLIB, max(wbits, 9)
    if -MAX_WBITS <= wbits <= -9:
        return RAW, -wbits
    if 16 + 9 <= wbits <= 16 + MAX_WBITS:
        return GZIP, wbits - 16
    return None


def _valid_options(level: int, method: int, wbits: int, mem_level: int, strategy: int) -> bool:
    return (
        -1 <= level <= 9
        and method == DEFLATED
        and _framing(wbits) is not None
        and 1 <= mem_level <= 9
        and 0 <= strategy <= Z_FIXED
    )


def _rank(flush: int) -> int:
    """zlib's order of flush strength: Z_BLOCK sits between Z_NO_FLUSH and Z_PARTIAL_FLUSH."""
    return flush * 2 - (9 if flush > 4 else 0)


# --- the compressor --------------------------------------------------------------


class Compress:
    """A streaming compressor; build it with :func:`compressobj`."""

    def __new__(cls, *args: object, **kwargs: object) -> NoReturn:
        # CPython's zlib.Compress cannot be instantiated directly either.
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__qualname__}' instances")

    @classmethod
    def _create(cls, level: int, wbits: int, mem_level: int, strategy: int, zdict: memoryview | None) -> Compress:
        self = object.__new__(cls)
        self._setup(level, wbits, mem_level, strategy, zdict)
        return self

    def _setup(self, level: int, wbits: int, mem_level: int, strategy: int, zdict: memoryview | None) -> None:
        framing = _framing(wbits)
        assert framing is not None and 0 <= level <= 9
        self._wrapper, self._window_bits = framing
        self._level = level
        self._strategy = strategy
        self._writer = BitWriter()
        self._lz = Lz77(level, strategy, self._window_bits, mem_level) if level else None
        self._check = 1 if self._wrapper == ZLIB else 0  # Adler-32 or CRC-32 of the input
        self._size = 0
        self._dict_id: int | None = None
        if zdict:
            if self._wrapper == ZLIB:
                self._dict_id = adler32(zdict)
            if self._lz is not None:
                self._lz.prime(zdict)
        self._stored: StoredDeflate | None = None  # level 0
        if level == 0:
            header = {ZLIB: self._zlib_header, GZIP: self._gzip_header, RAW: bytes}[self._wrapper]()
            self._stored = StoredDeflate(self._window_bits, mem_level, header, bytes(zdict or b""))
        self._started = False
        self._finished = False
        self._last_flush = -2  # zlib 1.2.12+: no flush seen yet, ranks below all
        self._zmsg: str | None = None  # zlib's strm->msg, reported in later errors

    # --- the API -----------------------------------------------------------

    def compress(self, data: object = MISSING, /, **keywords: Any) -> bytes:
        """Compress ``data``; returns whatever output is complete so far."""
        clinic_call("compress", keywords, given=int(data is not MISSING), required=1, at_most=1)
        data = bytes_view(data)
        if self._finished:
            raise error(f"Error -2 while compressing data: {self._message()}")
        nothing_to_do = not data and _rank(Z_NO_FLUSH) <= _rank(self._last_flush)
        if nothing_to_do:
            self._zmsg = "buffer error"
        self._last_flush = Z_NO_FLUSH
        self._start()
        self._checksum(data)
        if self._stored is not None:
            return b"" if nothing_to_do else self._stored.call(data, Z_NO_FLUSH)
        if self._lz is not None:
            for start in range(0, len(data), FEED_SIZE):
                self._lz.feed(data[start : start + FEED_SIZE])
                while self._lz.find_matches(flushing=False):
                    self._emit_block(final=False)
                self._lz.slide()
        return self._writer.take_output()

    def flush(self, mode: int = Z_FINISH, /, **keywords: Any) -> bytes:
        """Compress all pending input and emit it as ``mode`` says (see the module docs)."""
        clinic_call("flush", keywords, given=0, required=0, at_most=1)
        mode = c_int(mode)
        if mode == Z_NO_FLUSH:
            return b""
        if self._finished or not Z_NO_FLUSH <= mode <= Z_BLOCK:
            raise error(f"Error -2 while flushing: {self._message()}")
        if mode != Z_FINISH and _rank(mode) <= _rank(self._last_flush):
            # Nothing new since an equal or stronger flush: zlib answers Z_BUF_ERROR,
            # which CPython swallows, but the message sticks.
            self._zmsg = "buffer error"
            self._last_flush = mode
            return b""
        self._last_flush = mode
        self._start()
        if self._stored is not None:
            self._finished = mode == Z_FINISH
            return self._stored.call(memoryview(b""), mode, self._trailer() if self._finished else b"")
        self._end_input(final=mode == Z_FINISH)
        if mode == Z_PARTIAL_FLUSH:
            emit_empty_fixed_block(self._writer)
        elif mode in (Z_SYNC_FLUSH, Z_FULL_FLUSH):
            emit_stored_block(self._writer, b"", final=False)
            if mode == Z_FULL_FLUSH and self._lz is not None:
                self._lz.forget_history()
        elif mode == Z_FINISH:
            self._writer.align_to_byte()
            self._writer.write_bytes(self._trailer())
            self._finished = True
        return self._writer.take_output()

    def copy(self) -> Compress:
        """An independent compressor in the same state."""
        if self._finished:
            raise ValueError("Inconsistent stream state")
        twin = object.__new__(Compress)
        twin.__dict__.update(self.__dict__)
        twin._writer = self._writer.copy()
        twin._lz = self._lz.copy() if self._lz is not None else None
        twin._stored = self._stored.copy() if self._stored is not None else None
        return twin

    def __copy__(self) -> Compress:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Compress:
        return self.copy()

    def __reduce__(self) -> NoReturn:
        raise TypeError("cannot pickle 'zlib.Compress' object")  # as CPython's

    # --- internals ---------------------------------------------------------

    def _message(self) -> str:
        return self._zmsg or "inconsistent stream state"

    def _checksum(self, data: memoryview) -> None:
        if self._wrapper == ZLIB:
            self._check = adler32(data, self._check)
        elif self._wrapper == GZIP:
            self._check = crc32(data, self._check)
            self._size = (self._size + len(data)) & 0xFFFFFFFF

    def _emit_block(self, final: bool) -> None:
        assert self._lz is not None
        tokens, raw = self._lz.take_block()
        emit_block(self._writer, tokens, raw, final, fixed_only=self._strategy == Z_FIXED)

    def _end_input(self, final: bool) -> None:
        """Match and emit everything buffered, the lookahead included."""
        assert self._lz is not None
        while self._lz.find_matches(flushing=True):
            self._emit_block(final=False)
        self._lz.end_input()
        if final or self._lz.tokens:
            self._emit_block(final)

    def _start(self) -> None:
        """The stream header goes out with the first output, as zlib writes it (stored.py's, at level 0)."""
        if self._started or self._stored is not None:
            return
        self._started = True
        if self._wrapper == ZLIB:
            self._writer.write_bytes(self._zlib_header())
        elif self._wrapper == GZIP:
            self._writer.write_bytes(self._gzip_header())

    def _zlib_header(self) -> bytes:
        """RFC 1950 §2.2: CMF, FLG (FLEVEL as zlib sets it, FDICT, FCHECK), DICTID."""
        if self._strategy >= Z_HUFFMAN_ONLY or self._level < 2:
            level_flags = 0
        elif self._level < 6:
            level_flags = 1
        elif self._level == 6:
            level_flags = 2
        else:
            level_flags = 3
        cmf = DEFLATED | ((self._window_bits - 8) << 4)
        header = (cmf << 8) | (level_flags << 6)
        if self._dict_id is not None:
            header |= PRESET_DICT
        header += 31 - header % 31  # FCHECK; zlib adds 31 even when already a multiple
        out = header.to_bytes(2, "big")
        if self._dict_id is not None:
            out += self._dict_id.to_bytes(4, "big")
        return out

    def _gzip_header(self) -> bytes:
        """RFC 1952 §2.3: ID1 ID2 CM FLG MTIME XFL OS, with zlib's defaults."""
        if self._level == 9:
            xfl = 2  # slowest, best
        elif self._strategy >= Z_HUFFMAN_ONLY or self._level < 2:
            xfl = 4  # fastest
        else:
            xfl = 0
        return bytes((0x1F, 0x8B, DEFLATED, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNIX))

    def _trailer(self) -> bytes:
        if self._wrapper == ZLIB:
            return self._check.to_bytes(4, "big")
        if self._wrapper == GZIP:
            return self._check.to_bytes(4, "little") + self._size.to_bytes(4, "little")
        return b""


def compressobj(
    level: int = Z_DEFAULT_COMPRESSION,
    method: int = DEFLATED,
    wbits: int = MAX_WBITS,
    memLevel: int = DEF_MEM_LEVEL,  # CPython's keyword
    strategy: int = Z_DEFAULT_STRATEGY,
    zdict: Any = _NO_DICT,
) -> Compress:
    """Return a compressor object, as ``zlib.compressobj``."""
    level, method, wbits = c_int(level), c_int(method), c_int(wbits)
    memLevel, strategy = c_int(memLevel), c_int(strategy)
    dictionary = None if zdict is _NO_DICT else bytes_view(zdict)
    if not _valid_options(level, method, wbits, memLevel, strategy):
        raise ValueError("Invalid initialization option")
    if dictionary is not None and _framing(wbits)[0] == GZIP:  # type: ignore[index]
        raise ValueError("Invalid dictionary")
    if level == Z_DEFAULT_COMPRESSION:
        level = 6
    return Compress._create(level, wbits, memLevel, strategy, dictionary)


def compress(
    data: object = MISSING, /, level: int = Z_DEFAULT_COMPRESSION, wbits: int = MAX_WBITS, **keywords: Any
) -> bytes:
    """Compress ``data`` in one go, as ``zlib.compress``."""
    clinic_call("compress", keywords, given=int(data is not MISSING), required=1, at_most=3)
    data = bytes_view(data)
    level, wbits = c_int(level), c_int(wbits)
    if not _valid_options(level, DEFLATED, wbits, DEF_MEM_LEVEL, Z_DEFAULT_STRATEGY):
        raise error("Bad compression level")
    if level == Z_DEFAULT_COMPRESSION:
        level = 6
    compressor = Compress._create(level, wbits, DEF_MEM_LEVEL, Z_DEFAULT_STRATEGY, None)
    if compressor._stored is not None:  # CPython hands zlib all the input with Z_FINISH at once
        compressor._checksum(data)
        return compressor._stored.call(data, Z_FINISH, compressor._trailer())
    return compressor.compress(data) + compressor.flush()


Compress.__module__ = "spore.zlib"  # where users meet it, as Decompress
