"""Argument conversion with CPython's zlib module's exact exceptions and wording.

CPython's test_zlib checks the types and texts of these errors, so a drop-in has
to raise the same ones: a ``str`` where bytes belong is a TypeError naming the
type, an int that does not fit a C ``int`` or ``Py_ssize_t`` is an OverflowError.
"""

from __future__ import annotations

import operator

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
SSIZE_MIN, SSIZE_MAX = -(1 << 63), (1 << 63) - 1


def bytes_view(data: object) -> memoryview:
    """A flat byte view of a bytes-like object, as the C ``Py_buffer`` converter accepts."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def c_int(value: object) -> int:
    """An ``int`` argument (``__index__`` honoured), range-checked like a C int."""
    number = operator.index(value)  # type: ignore[call-overload]
    if not INT_MIN <= number <= INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    return number


def c_ssize_t(value: object) -> int:
    """A ``Py_ssize_t`` argument (``__index__`` honoured), range-checked."""
    number = operator.index(value)  # type: ignore[call-overload]
    if not SSIZE_MIN <= number <= SSIZE_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return number


def c_unsigned_mask(value: object) -> int:
    """An ``unsigned int`` taken modulo 2**32, as the checksum functions take ``value``."""
    return operator.index(value) & 0xFFFFFFFF  # type: ignore[call-overload]
