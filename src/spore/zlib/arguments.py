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


MISSING: object = object()  # a positional-only argument the caller did not give


def clinic_call(function: str, keywords: dict[str, object], *, given: int, required: int, at_most: int) -> None:
    """Argument Clinic's complaints about a call, in its order and words (CPython's _PyArg_UnpackKeywords).

    The zlib functions take their data positionally only; ``keywords`` are the
    keyword arguments no parameter took (``data=...`` among them), ``given``
    the positional arguments passed, ``at_most`` how many parameters there are.
    """
    if keywords and given + len(keywords) > at_most:
        plural = "s" if at_most != 1 else ""
        raise TypeError(f"{function}() takes at most {at_most} argument{plural} ({given + len(keywords)} given)")
    if given < required:
        quantity = "at least" if required < at_most else "exactly"
        plural = "s" if required != 1 else ""
        raise TypeError(f"{function}() takes {quantity} {required} positional argument{plural} ({given} given)")
    if keywords:
        raise TypeError(f"'{next(iter(keywords))}' is an invalid keyword argument for {function}()")


def checksum_call(function: str, data: object, keywords: dict[str, object]) -> None:
    """crc32 and adler32 take no keywords at all (METH_FASTCALL), and need their data."""
    if keywords:
        raise TypeError(f"zlib.{function}() takes no keyword arguments")
    if data is MISSING:
        raise TypeError(f"{function} expected at least 1 argument, got 0")
