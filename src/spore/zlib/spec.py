"""The reference DEFLATE decoder: RFC 1951 (with RFC 1950 and 1952 framing) read aloud.

This module is the specification every other decoder in spore.zlib is checked
against. It is written for a reader holding the RFC, in the manner of Mark
Adler's puff.c: a few small functions named after the parts of the format
(``stored``, ``fixed``, ``dynamic``, ``codes``, ``decode``, ``construct``), each
doing one thing, and every way a stream can be wrong a named exception carrying
zlib's exact message. Nothing here is tuned for speed.

Where C zlib (inflate.c, inftrees.c) decides something the RFC leaves open, this
module decides it the same way, so that "same output or same error" can be
tested between this module, the fast decoder and C zlib. Those places are the
"format notes" below.

Format notes
------------

* Bits are read least-significant first within each byte (§3.1.1). Huffman codes
  are packed starting with their most-significant bit, so ``decode`` reads them
  one bit at a time and appends each bit on the right of the code.
* Code validity (§3.2.2 allows any prefix code; zlib is stricter): a set of code
  lengths is rejected if it is over-subscribed (more codes than bit patterns), or
  if it is incomplete (bit patterns left unused), except that a literal/length or
  distance code with exactly one symbol of length one is accepted. A code with no
  symbols at all is accepted too; any attempt to decode with it is then an
  invalid code, detected after reading one bit.
* zlib quirk kept for fidelity: if all 19 code length code lengths are zero, each
  code length is read as a one-bit "length 0"; the block then necessarily fails
  with "invalid code -- missing end-of-block".
* Literal/length symbols 286 and 287 and distance symbols 30 and 31 exist in the
  fixed code (§3.2.6) but have no meaning; decoding one is an invalid code.
* A repeat code (16, 17, 18) reads its extra bits before it is checked, and a
  repeat may run from the literal/length lengths into the distance lengths
  (§3.2.7 says the two lists form one sequence).
* A distance may reach back into the preset dictionary (RFC 1950 FDICT) but not
  before it; the history available is the last 2**wbits bytes of the dictionary
  plus everything decoded so far. (A conforming stream never reaches further
  than its window. For one that does, with a window below 32 KiB, C zlib's
  verdict depends on its output buffering: it accepts the distance if the bytes
  are still in the current inflate() call's output. This module, like the fast
  decoder run with a single output buffer, accepts it; the API layer imitates
  CPython's buffering so that spore.zlib and C zlib agree there too.)
* A stored block's LEN and NLEN are read only after skipping to a byte boundary,
  and all four bytes are read before they are compared (§3.2.4).
* The stream ends at the byte boundary after the last block; the zlib or gzip
  trailer follows there. Anything after the stream is "unused data".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from spore.zlib.checksum import adler32, crc32

MAXBITS = 15  # longest Huffman code (§3.2.7)
MAXLCODES = 286  # literal/length symbols a dynamic block may declare
MAXDCODES = 30  # distance symbols a dynamic block may declare
FIXLCODES = 288  # literal/length symbols in the fixed code (§3.2.6)
END_OF_BLOCK = 256

# §3.2.5: base value and extra bits of length symbols 257..285 (index 0 is 257).
LENGTH_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
               35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258)  # fmt: skip
LENGTH_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)  # fmt: skip
# §3.2.5: base value and extra bits of distance symbols 0..29.
DIST_BASE = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
             513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)  # fmt: skip
DIST_EXTRA = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
              8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13)  # fmt: skip
# §3.2.7: the order in which code length code lengths are sent.
CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)

# §3.2.6: the fixed literal/length and distance code lengths.
FIXED_LITLEN_LENGTHS = (8,) * 144 + (9,) * 112 + (7,) * 24 + (8,) * 8
FIXED_DIST_LENGTHS = (5,) * 32


# --- errors --------------------------------------------------------------------


class InflateError(Exception):
    """A malformed stream. ``message`` is zlib's text for it, word for word."""

    message = ""

    def __init__(self) -> None:
        super().__init__(self.message)


class IncompleteStream(InflateError):
    """The input ended before the stream did. ``output`` is what was decoded."""

    message = "incomplete or truncated stream"

    def __init__(self, output: bytes = b"") -> None:
        super().__init__()
        self.output = output


class NeedDictionary(InflateError):
    """A zlib stream with FDICT set and no (or the wrong) preset dictionary."""

    message = "need dictionary"

    def __init__(self, dictid: int = 0) -> None:
        super().__init__()
        self.dictid = dictid


class WrongDictionary(InflateError):
    """The dictionary given does not have the Adler-32 the zlib header names."""

    message = "invalid input data"  # inflateSetDictionary's Z_DATA_ERROR, as CPython words it


class InvalidBlockType(InflateError):
    message = "invalid block type"


class InvalidStoredBlockLengths(InflateError):
    message = "invalid stored block lengths"


class TooManyLengthOrDistanceSymbols(InflateError):
    message = "too many length or distance symbols"


class InvalidCodeLengthsSet(InflateError):
    message = "invalid code lengths set"


class InvalidBitLengthRepeat(InflateError):
    message = "invalid bit length repeat"


class MissingEndOfBlock(InflateError):
    message = "invalid code -- missing end-of-block"


class InvalidLiteralLengthsSet(InflateError):
    message = "invalid literal/lengths set"


class InvalidDistancesSet(InflateError):
    message = "invalid distances set"


class InvalidLiteralLengthCode(InflateError):
    message = "invalid literal/length code"


class InvalidDistanceCode(InflateError):
    message = "invalid distance code"


class DistanceTooFarBack(InflateError):
    message = "invalid distance too far back"


class IncorrectHeaderCheck(InflateError):
    message = "incorrect header check"


class UnknownCompressionMethod(InflateError):
    message = "unknown compression method"


class InvalidWindowSize(InflateError):
    message = "invalid window size"


class UnknownHeaderFlags(InflateError):
    message = "unknown header flags set"


class HeaderCrcMismatch(InflateError):
    message = "header crc mismatch"


class IncorrectDataCheck(InflateError):
    message = "incorrect data check"


class IncorrectLengthCheck(InflateError):
    message = "incorrect length check"


# --- input bits ----------------------------------------------------------------


class BitReader:
    """The input stream, read as bits from the least-significant end (§3.1.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # bit position of the next unread bit

    def bits(self, count: int) -> int:
        """The next ``count`` bits as an int, first bit read in the lowest place."""
        if self.pos + count > 8 * len(self.data):
            raise IncompleteStream()
        value = 0
        for k in range(count):
            byte = self.data[(self.pos + k) >> 3]
            value |= ((byte >> ((self.pos + k) & 7)) & 1) << k
        self.pos += count
        return value

    def align(self) -> None:
        """Skip to the next byte boundary (§3.2.4)."""
        self.pos = (self.pos + 7) & ~7

    def byte(self) -> int:
        """The next whole byte; only called on a byte boundary."""
        return self.bits(8)

    def consumed(self) -> int:
        """Bytes touched so far, counting a partly read byte."""
        return (self.pos + 7) >> 3


# --- Huffman codes (§3.2.2) ----------------------------------------------------


@dataclass(frozen=True)
class Huffman:
    """A canonical code: how many codes of each length, and the symbols in code order."""

    count: tuple[int, ...]  # count[n] = number of codes of length n, n in 0..MAXBITS
    symbol: tuple[int, ...]  # symbols ordered by (code length, symbol value)


def construct(lengths: list[int] | tuple[int, ...]) -> Huffman:
    """Canonical code for ``lengths`` (§3.2.2): shorter codes first, ties by symbol."""
    count = [0] * (MAXBITS + 1)
    for length in lengths:
        count[length] += 1
    symbol = [sym for n in range(1, MAXBITS + 1) for sym, ln in enumerate(lengths) if ln == n]
    return Huffman(tuple(count), tuple(symbol))


def code_is_acceptable(h: Huffman, *, is_code_length_code: bool) -> bool:
    """zlib's rule (format notes): no over-subscription; complete unless a single 1-bit code."""
    longest = max((n for n in range(1, MAXBITS + 1) if h.count[n]), default=0)
    if longest == 0:
        return True  # no symbols: accepted, and every decode is an invalid code
    left = 1  # bit patterns still unassigned at the current length
    for n in range(1, MAXBITS + 1):
        left = 2 * left - h.count[n]
        if left < 0:
            return False  # over-subscribed
    if left > 0:
        return not is_code_length_code and longest == 1
    return True


def decode(s: BitReader, h: Huffman) -> int:
    """One symbol, read bit by bit: -1 if the bits read match no code of ``h``.

    At each length n, the codes of length n are the integers first..first+count-1
    (§3.2.2's next_code); a code read so far that is below first+count is one of
    them. When no longer codes remain, the bits read can never become a code.
    """
    code = first = index = 0
    remaining = sum(h.count[1:])
    for n in range(1, MAXBITS + 1):
        code |= s.bits(1)
        count = h.count[n]
        if code - first < count:
            return h.symbol[index + code - first]
        index += count
        remaining -= count
        if remaining == 0:
            return -1  # an incomplete code's unused pattern, or an empty code
        first = (first + count) << 1
        code <<= 1
    return -1  # unreachable for acceptable codes


# --- blocks (§3.2.3 - §3.2.7) --------------------------------------------------


def stored(s: BitReader, out: bytearray) -> None:
    """A stored block (§3.2.4): LEN, its ones' complement NLEN, then LEN raw bytes."""
    s.align()
    length = s.bits(16)
    complement = s.bits(16)
    if length != complement ^ 0xFFFF:
        raise InvalidStoredBlockLengths()
    for _ in range(length):
        out.append(s.byte())


def codes(s: BitReader, out: bytearray, lencode: Huffman, distcode: Huffman) -> None:
    """Literal and length/distance pairs until end-of-block (§3.2.5).

    ``out`` holds everything a distance may reach: the preset dictionary (if
    any) followed by the output so far.
    """
    while True:
        symbol = decode(s, lencode)
        if symbol < 0 or symbol > 285:
            raise InvalidLiteralLengthCode()
        if symbol < 256:
            out.append(symbol)
            continue
        if symbol == END_OF_BLOCK:
            return
        symbol -= 257
        length = LENGTH_BASE[symbol] + s.bits(LENGTH_EXTRA[symbol])
        symbol = decode(s, distcode)
        if symbol < 0 or symbol > 29:
            raise InvalidDistanceCode()
        distance = DIST_BASE[symbol] + s.bits(DIST_EXTRA[symbol])
        if distance > len(out):
            raise DistanceTooFarBack()
        # Byte by byte: a distance shorter than the length repeats what it copies.
        for _ in range(length):
            out.append(out[len(out) - distance])


def fixed(s: BitReader, out: bytearray) -> None:
    """A block coded with the fixed codes of §3.2.6."""
    codes(s, out, construct(FIXED_LITLEN_LENGTHS), construct(FIXED_DIST_LENGTHS))


def dynamic(s: BitReader, out: bytearray) -> None:
    """A block whose codes are sent first, as run-length coded code lengths (§3.2.7)."""
    nlen = s.bits(5) + 257  # HLIT
    ndist = s.bits(5) + 1  # HDIST
    ncode = s.bits(4) + 4  # HCLEN
    if nlen > MAXLCODES or ndist > MAXDCODES:
        raise TooManyLengthOrDistanceSymbols()

    code_length_lengths = [0] * 19
    for index in range(ncode):
        code_length_lengths[CODE_LENGTH_ORDER[index]] = s.bits(3)
    lencode = construct(code_length_lengths)
    if not code_is_acceptable(lencode, is_code_length_code=True):
        raise InvalidCodeLengthsSet()
    all_zero = not any(code_length_lengths)

    lengths: list[int] = []
    while len(lengths) < nlen + ndist:
        if all_zero:
            s.bits(1)  # format note: an all-zero code length code reads a 1-bit "0"
            symbol = 0
        else:
            symbol = decode(s, lencode)
        if symbol < 16:
            lengths.append(symbol)
            continue
        if symbol == 16:
            repeat = 3 + s.bits(2)
            if not lengths:
                raise InvalidBitLengthRepeat()
            value = lengths[-1]
        elif symbol == 17:
            repeat, value = 3 + s.bits(3), 0
        else:
            repeat, value = 11 + s.bits(7), 0
        if len(lengths) + repeat > nlen + ndist:
            raise InvalidBitLengthRepeat()
        lengths.extend([value] * repeat)

    if lengths[END_OF_BLOCK] == 0:
        raise MissingEndOfBlock()
    litlen = construct(lengths[:nlen])
    if not code_is_acceptable(litlen, is_code_length_code=False):
        raise InvalidLiteralLengthsSet()
    dist = construct(lengths[nlen:])
    if not code_is_acceptable(dist, is_code_length_code=False):
        raise InvalidDistancesSet()
    codes(s, out, litlen, dist)


def inflate_raw(s: BitReader, dictionary: bytes = b"") -> bytes:
    """Decode raw DEFLATE blocks from ``s`` until the last one (§3.2.3).

    On return ``s`` is at the byte boundary after the last block. The dictionary
    is history that distances may reach into; it is not part of the output.
    """
    out = bytearray(dictionary)
    try:
        last = 0
        while not last:
            last = s.bits(1)  # BFINAL
            block_type = s.bits(2)  # BTYPE
            if block_type == 0:
                stored(s, out)
            elif block_type == 1:
                fixed(s, out)
            elif block_type == 2:
                dynamic(s, out)
            else:
                raise InvalidBlockType()
    except IncompleteStream as exc:
        raise IncompleteStream(bytes(out[len(dictionary) :])) from exc
    s.align()
    return bytes(out[len(dictionary) :])


# --- framing (RFC 1950 zlib, RFC 1952 gzip) --------------------------------------

GZIP_MAGIC = 0x8B1F  # bytes 1f 8b read as a little-endian 16-bit value
FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16


def parse_wbits(wbits: int) -> tuple[str, int] | None:
    """zlib's reading of inflate's wbits: (framing, window bits), None if invalid.

    framing is "raw" (-8..-15), "zlib" (0, 8..15; 0 takes the window from the
    header), "gzip" (16 + those) or "auto" (32 + those: gzip if the magic is
    there, zlib otherwise).
    """
    if wbits < 0:
        if wbits < -15:
            return None
        framing, window = "raw", -wbits
    else:
        framing = ("zlib", "gzip", "auto")[wbits >> 4] if wbits < 48 else "invalid"
        window = wbits & 15 if wbits < 48 else wbits
    if framing == "invalid" or (window and not 8 <= window <= 15):
        return None
    return framing, window


def zlib_header(s: BitReader, window: int) -> tuple[int, int | None]:
    """RFC 1950 §2.2 CMF and FLG (and DICTID): returns (window bits, dictid or None)."""
    cmf = s.bits(8)
    flg = s.bits(8)
    if (cmf << 8 | flg) % 31:
        raise IncorrectHeaderCheck()
    if cmf & 15 != 8:
        raise UnknownCompressionMethod()
    header_window = (cmf >> 4) + 8  # CINFO is log2(window) - 8
    if window == 0:
        window = header_window
    if header_window > 15 or header_window > window:
        raise InvalidWindowSize()
    dictid = None
    if flg & 0x20:  # FDICT: the Adler-32 of the dictionary follows, big-endian
        dictid = int.from_bytes(s.bits(32).to_bytes(4, "little"), "big")
    return window, dictid


def gzip_header(s: BitReader) -> None:
    """RFC 1952 §2.3 member header, after the magic bytes have been read."""
    header = bytearray(b"\x1f\x8b")

    def take(count: int) -> bytes:
        chunk = bytes(s.byte() for _ in range(count))
        header.extend(chunk)
        return chunk

    method, flags = take(2)
    if method != 8:
        raise UnknownCompressionMethod()
    if flags & 0xE0:  # reserved FLG bits 5..7
        raise UnknownHeaderFlags()
    take(4)  # MTIME
    take(2)  # XFL, OS
    if flags & FEXTRA:
        take(int.from_bytes(take(2), "little"))
    if flags & FNAME:
        while take(1) != b"\x00":
            pass
    if flags & FCOMMENT:
        while take(1) != b"\x00":
            pass
    if flags & FHCRC:
        expected = crc32(header) & 0xFFFF
        if s.bits(16) != expected:
            raise HeaderCrcMismatch()


def decompress(data: bytes, wbits: int = 15, zdict: bytes | None = None) -> tuple[bytes, bytes]:
    """One stream in any framing: returns (output, unused data after the stream).

    Raises an ``InflateError`` subclass for a malformed stream, ``IncompleteStream``
    (with the output so far) for a truncated one and ``NeedDictionary`` when a
    zlib stream names a dictionary that ``zdict`` does not match.
    """
    parsed = parse_wbits(wbits)
    if parsed is None:
        raise ValueError(f"invalid wbits {wbits}")
    framing, window = parsed
    s = BitReader(data)
    dictionary = b""
    if framing == "raw":
        dictionary = (zdict or b"")[-(1 << window) :]
        output = inflate_raw(s, dictionary)
        return output, data[s.consumed() :]

    magic = s.bits(16)
    s.pos = 0
    is_gzip = framing in ("gzip", "auto") and magic == GZIP_MAGIC
    if not is_gzip and framing == "gzip":
        s.bits(16)
        raise IncorrectHeaderCheck()
    if is_gzip:
        s.bits(16)
        gzip_header(s)
        output = inflate_raw(s)
        with _trailer_of(output):
            if _little_endian(s, 4) != crc32(output):
                raise IncorrectDataCheck()
            if _little_endian(s, 4) != len(output) & 0xFFFFFFFF:
                raise IncorrectLengthCheck()
        return output, data[s.consumed() :]

    window, dictid = zlib_header(s, window)
    if dictid is not None:
        if zdict is None:
            raise NeedDictionary(dictid)
        if adler32(zdict) != dictid:
            raise WrongDictionary()
        dictionary = zdict[-(1 << window) :]
    output = inflate_raw(s, dictionary)
    with _trailer_of(output):
        if int.from_bytes(_little_endian(s, 4).to_bytes(4, "little"), "big") != adler32(output):
            raise IncorrectDataCheck()
    return output, data[s.consumed() :]


def _little_endian(s: BitReader, count: int) -> int:
    return s.bits(8 * count)


@contextmanager
def _trailer_of(output: bytes) -> Iterator[None]:
    """A trailer cut short still reports the output decoded before it."""
    try:
        yield
    except IncompleteStream as exc:
        raise IncompleteStream(output) from exc
