"""``decompress`` and ``decompressobj``: CPython's zlib API over the Inflater engine.

The observable behaviour follows CPython 3.11's Modules/zlibmodule.c driving C
zlib 1.2.13, including its corners: which input lands in ``unconsumed_tail``
and which in ``unused_data`` (save_unconsumed_input), that ``flush`` swallows
data errors and returns what it decoded, that a stream finished by ``flush``
cannot be used or copied again, and the exact "Error N while ..." texts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from spore.zlib.arguments import MISSING, bytes_view, c_int, c_ssize_t, clinic_call
from spore.zlib.constants import DEF_BUF_SIZE, MAX_WBITS
from spore.zlib.errors import error
from spore.zlib.inflate import (
    DATA_ERROR,
    NEED_DICT,
    NEED_INPUT,
    STREAM_END,
    Inflater,
)
from spore.zlib.spec import parse_wbits

_NO_ZDICT: Any = object()

# CPython's output buffers grow by these blocks (Include/internal/pycore_blocks_output_buffer.h);
# each block is one inflate() call, which decides what a small window accepts.
_BLOCK_SIZES = (32 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20, 16 << 20,
                32 << 20, 32 << 20, 32 << 20, 32 << 20, 64 << 20, 64 << 20, 128 << 20, 128 << 20)  # fmt: skip
_BLOCK_SIZE_MAX = 256 << 20


def _output_blocks(first: int, limit: int | None = None) -> Iterator[int]:
    """Block sizes of a _BlocksOutputBuffer whose first block is ``first``, capped at ``limit``."""
    allocated = 0
    for index in itertools.count():
        size = first if index == 0 else _BLOCK_SIZES[index] if index < len(_BLOCK_SIZES) else _BLOCK_SIZE_MAX
        if limit is not None:
            size = min(size, limit - allocated)
            if size <= 0:
                return
        allocated += size
        yield size


def _no_copy(data: Any, view: memoryview) -> bytes | memoryview:
    """``data`` itself when it is bytes (the engine would otherwise copy the view)."""
    return data if type(data) is bytes else view


def _raise(status: int, engine: Inflater, action: str = "while decompressing data") -> NoReturn:
    if status == NEED_DICT:
        raise error(f"Error 2 {action}")  # Z_NEED_DICT carries no message
    if status == NEED_INPUT:
        raise error(f"Error -5 {action}: incomplete or truncated stream")
    raise error(f"Error -3 {action}: {engine.message}")


def decompress(data: Any = MISSING, /, wbits: Any = MAX_WBITS, bufsize: Any = DEF_BUF_SIZE, **keywords: Any) -> bytes:
    """Decompress a whole stream; trailing bytes after it are ignored, as in zlib."""
    clinic_call("decompress", keywords, given=int(data is not MISSING), required=1, at_most=3)
    view = bytes_view(data)
    wbits = c_int(wbits)
    bufsize = c_ssize_t(bufsize)
    if bufsize < 0:
        raise ValueError("bufsize must be non-negative")
    parsed = parse_wbits(wbits)
    if parsed is None:
        raise error("Error -2 while preparing to decompress data: inconsistent stream state")
    engine = Inflater(*parsed)
    output, status, _ = engine.run(_no_copy(data, view), None, _output_blocks(max(bufsize, 1)))
    if status != STREAM_END:
        _raise(status, engine)
    return output


class Decompress:
    """A streaming decompressor, as returned by ``decompressobj``."""

    def __new__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__qualname__}' instances")

    @classmethod
    def _create(cls, engine: Inflater, zdict: Any) -> Decompress:
        self = object.__new__(cls)
        self._engine = engine
        self._zdict = zdict
        self._eof = False
        self._ended = False  # flush() reached the end: C zlib's inflateEnd has run
        self._unused_data = b""
        self._unconsumed_tail = b""
        return self

    @property
    def eof(self) -> bool:
        """True once the end of the compressed stream has been reached."""
        return self._eof

    @property
    def unused_data(self) -> bytes:
        """Bytes found after the end of the compressed stream."""
        return self._unused_data

    @property
    def unconsumed_tail(self) -> bytes:
        """Input not yet decompressed because max_length was reached."""
        return self._unconsumed_tail

    def _save_unconsumed_input(self, rest: bytes, status: int) -> None:
        # Modules/zlibmodule.c save_unconsumed_input(), quirk included: after the
        # stream ends, a non-empty unconsumed_tail is replaced by the same bytes
        # that went to unused_data.
        if status == STREAM_END:
            self._unused_data += rest
            self._eof = True
            if self._unconsumed_tail:
                self._unconsumed_tail = rest
        elif rest or self._unconsumed_tail:
            self._unconsumed_tail = rest

    def decompress(self, data: Any = MISSING, /, max_length: Any = 0, **keywords: Any) -> bytes:
        """Decompress ``data``, returning at most ``max_length`` bytes (0: no limit)."""
        clinic_call("decompress", keywords, given=int(data is not MISSING), required=1, at_most=2)
        view = bytes_view(data)
        max_length = c_ssize_t(max_length)
        if max_length < 0:
            raise ValueError("max_length must be non-negative")
        if self._ended:
            self._save_unconsumed_input(bytes(view), DATA_ERROR)
            raise error("Error -2 while decompressing data: inconsistent stream state")
        limit = max_length or None
        first = _BLOCK_SIZES[0] if limit is None else min(_BLOCK_SIZES[0], limit)
        output, status, rest = self._inflate(_no_copy(data, view), limit, lambda: _output_blocks(first, limit))
        self._save_unconsumed_input(rest, status)
        if status in (NEED_DICT, DATA_ERROR):
            _raise(status, self._engine)
        return output

    def _inflate(
        self, view: bytes | memoryview, limit: int | None, blocks: Callable[[], Iterator[int]]
    ) -> tuple[bytes, int, bytes]:
        """Run the engine, supplying zdict when the stream asks for it (set_inflate_zdict).

        After a dictionary is set, inflate() is called afresh with the same
        (still empty) output buffer, hence a fresh ``blocks()``.
        """
        engine = self._engine
        pieces: list[bytes] = []
        while True:
            output, status, consumed = engine.run(view, limit, blocks())
            pieces.append(output)
            view = view[consumed:]
            if status == NEED_DICT and self._zdict is not _NO_ZDICT:
                if not engine.set_dictionary(bytes(bytes_view(self._zdict))):
                    raise error("Error -3 while setting zdict: invalid input data")
                continue
            return b"".join(pieces), status, bytes(view)

    def flush(self, length: Any = DEF_BUF_SIZE, /, **keywords: Any) -> bytes:
        """Decompress what is left in unconsumed_tail; data errors end it quietly.

        (As in CPython: flush() reports no stream errors, it returns what decoded.)
        """
        clinic_call("flush", keywords, given=0, required=0, at_most=1)
        length = c_ssize_t(length)
        if length <= 0:
            raise ValueError("length must be greater than zero")
        tail = self._unconsumed_tail
        if self._ended:
            return b""
        output, status, rest = self._inflate(tail, None, lambda: _output_blocks(length))
        self._save_unconsumed_input(rest, status)
        if status == STREAM_END:
            self._ended = True
        return output

    def copy(self) -> Decompress:
        """An independent decompressor in the same state."""
        if self._ended:
            raise ValueError("Inconsistent stream state")
        other = Decompress._create(self._engine.copy(), self._zdict)
        other._eof = self._eof
        other._unused_data = self._unused_data
        other._unconsumed_tail = self._unconsumed_tail
        return other

    def __copy__(self) -> Decompress:
        return self.copy()

    def __deepcopy__(self, memo: object) -> Decompress:
        return self.copy()

    def __reduce__(self) -> NoReturn:
        raise TypeError("cannot pickle 'zlib.Decompress' object")  # as CPython's


def decompressobj(wbits: Any = MAX_WBITS, zdict: Any = _NO_ZDICT) -> Decompress:
    """A streaming decompressor for wbits framing, with an optional preset dictionary."""
    wbits = c_int(wbits)
    if zdict is not _NO_ZDICT:
        try:
            memoryview(zdict)
        except TypeError:
            raise TypeError("zdict argument must support the buffer protocol") from None
    parsed = parse_wbits(wbits)
    if parsed is None:
        raise ValueError("Invalid initialization option")
    engine = Inflater(*parsed)
    if zdict is not _NO_ZDICT and parsed[0] == "raw":
        engine.set_dictionary(bytes(bytes_view(zdict)))
    return Decompress._create(engine, zdict)


Decompress.__module__ = "spore.zlib"
