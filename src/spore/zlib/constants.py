"""The constants of CPython's ``zlib`` module, with zlib 1.2.13's values."""

from __future__ import annotations

# The versions CPython reports; test code inspects them, so they look like zlib's.
ZLIB_VERSION = "1.2.13"
ZLIB_RUNTIME_VERSION = "1.2.13"

MAX_WBITS = 15  # 32 KiB window, the largest DEFLATE allows (RFC 1951 §2)
DEFLATED = 8  # the only compression method (RFC 1950 CM, RFC 1952 CM)
DEF_MEM_LEVEL = 8
DEF_BUF_SIZE = 16384

# Compression levels.
Z_NO_COMPRESSION = 0
Z_BEST_SPEED = 1
Z_BEST_COMPRESSION = 9
Z_DEFAULT_COMPRESSION = -1

# Strategies.
Z_DEFAULT_STRATEGY = 0
Z_FILTERED = 1
Z_HUFFMAN_ONLY = 2
Z_RLE = 3
Z_FIXED = 4

# Flush modes.
Z_NO_FLUSH = 0
Z_PARTIAL_FLUSH = 1
Z_SYNC_FLUSH = 2
Z_FULL_FLUSH = 3
Z_FINISH = 4
Z_BLOCK = 5
Z_TREES = 6
