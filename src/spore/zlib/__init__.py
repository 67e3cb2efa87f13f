"""spore.zlib: DEFLATE (RFC 1951), zlib (RFC 1950) and gzip (RFC 1952) in pure Python.

A drop-in for CPython's ``zlib`` module: the same functions, constants,
exception type, argument handling and error messages. Decompression is
``decompressor`` over the streaming engine in ``inflate`` (checked against the
reference decoder in ``spec``); compression is ``deflate``; checksums are in
``checksum``. docs/zlib-verification.md says what evidence backs each part.
"""

from __future__ import annotations

from typing import Any

from spore.zlib.arguments import MISSING, bytes_view, c_unsigned_mask, checksum_call
from spore.zlib.checksum import adler32 as _adler32
from spore.zlib.checksum import crc32 as _crc32
from spore.zlib.constants import (
    DEF_BUF_SIZE,
    DEF_MEM_LEVEL,
    DEFLATED,
    MAX_WBITS,
    Z_BEST_COMPRESSION,
    Z_BEST_SPEED,
    Z_BLOCK,
    Z_DEFAULT_COMPRESSION,
    Z_DEFAULT_STRATEGY,
    Z_FILTERED,
    Z_FINISH,
    Z_FIXED,
    Z_FULL_FLUSH,
    Z_HUFFMAN_ONLY,
    Z_NO_COMPRESSION,
    Z_NO_FLUSH,
    Z_PARTIAL_FLUSH,
    Z_RLE,
    Z_SYNC_FLUSH,
    Z_TREES,
    ZLIB_RUNTIME_VERSION,
    ZLIB_VERSION,
)
from spore.zlib.decompressor import decompress, decompressobj
from spore.zlib.deflate import compress, compressobj
from spore.zlib.errors import error


def crc32(data: Any = MISSING, value: Any = 0, /, **keywords: Any) -> int:
    """CRC-32 of ``data``, starting from ``value`` (a previous result), as an unsigned int."""
    checksum_call("crc32", data, keywords)
    return _crc32(bytes_view(data), c_unsigned_mask(value))


def adler32(data: Any = MISSING, value: Any = 1, /, **keywords: Any) -> int:
    """Adler-32 of ``data``, starting from ``value`` (a previous result), as an unsigned int."""
    checksum_call("adler32", data, keywords)
    return _adler32(bytes_view(data), c_unsigned_mask(value))


__all__ = [
    "DEFLATED",
    "DEF_BUF_SIZE",
    "DEF_MEM_LEVEL",
    "MAX_WBITS",
    "ZLIB_RUNTIME_VERSION",
    "ZLIB_VERSION",
    "Z_BEST_COMPRESSION",
    "Z_BEST_SPEED",
    "Z_BLOCK",
    "Z_DEFAULT_COMPRESSION",
    "Z_DEFAULT_STRATEGY",
    "Z_FILTERED",
    "Z_FINISH",
    "Z_FIXED",
    "Z_FULL_FLUSH",
    "Z_HUFFMAN_ONLY",
    "Z_NO_COMPRESSION",
    "Z_NO_FLUSH",
    "Z_PARTIAL_FLUSH",
    "Z_RLE",
    "Z_SYNC_FLUSH",
    "Z_TREES",
    "adler32",
    "compress",
    "compressobj",
    "crc32",
    "decompress",
    "decompressobj",
    "error",
]
