"""The one exception type of spore.zlib, the equivalent of CPython's ``zlib.error``."""

from __future__ import annotations


class error(Exception):  # the name CPython's zlib module gives it
    """Raised on a corrupt or truncated stream and on a misused (de)compressor.

    The message text follows CPython's ``zlib`` module exactly, e.g.
    ``"Error -3 while decompressing data: invalid distance too far back"``.
    """
