"""The fast, streaming, resumable DEFLATE decoder behind ``decompress``/``decompressobj``.

It decodes exactly what spore.zlib.spec decodes (tests/zlib/test_zlib_differential.py
holds it to that on valid and invalid streams) but is organised for speed and for
being fed input and output space a piece at a time, the way C zlib's inflate()
is:

* Bits are held in an int ``hold`` of ``nbits`` bits, least-significant first.
  The careful path pulls one byte at a time, only when a step needs more bits;
  so at every return to the caller at most 7 bits are held, and "consumed
  input" means exactly what it means for C zlib (unconsumed_tail and
  unused_data agree byte for byte).
* The fast path runs while at least 24 input bytes and 270 bytes of output room
  remain. It refills 64 bits at a time from a memoryview of the input cast to
  little-endian 64-bit words, and decodes with a one-lookup table (up to
  ``LIT_FAST_BITS`` bits) whose literal entries may hold a run of several
  literals, so one lookup can emit several bytes. Matches are bytearray slice
  copies, or pattern repeats when the distance is shorter than the length.
* Huffman tables are flat lists built with extended-slice assignment (C speed):
  ``full`` covers every code (2**maxbits entries of ``symbol << 4 | length``),
  ``fast`` covers codes up to the fast width; longer or invalid codes make the
  fast path hand the symbol to the careful one.
* Building tables must not cost more than the input that asks for them (issue
  13: non-final dynamic blocks that each declare 15-bit codes and hold only
  end-of-block cost 46 s of CPU per MB). So a dynamic block's code is built in
  stages whose cost follows the input spent on it: the header gives the
  canonical code (puff.c's count/symbol arrays, work proportional to the coded
  symbols) and a fast table without literal runs (one slice assignment per
  code of up to ``LIT_FAST_BITS`` bits); the careful path decodes canonically,
  bit by bit, with no 2**maxbits table; literal runs and the full tables are
  built only after the block has consumed ``UPGRADE_AFTER_INPUT`` bytes. Codes are kept in a small LRU
  cache keyed by their code lengths, so repeated tables are not rebuilt.
* State that must survive between calls (mode, held bits, pending output of a
  symbol decoded when the output was full, the last 32 KiB of history, the
  running check value) lives on ``Inflater``; everything else is rebuilt per call.

The careful path mirrors inflate.c's order of operations, because the order
decides observable things: a symbol is decoded before the output space is
checked (so a full output still consumes the next symbol), a distance is checked
against the history only when its bytes are about to be copied, and errors are
reported as soon as the bits that prove them have been read.
"""

from __future__ import annotations

import contextlib
import sys
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

from spore.zlib.checksum import adler32, crc32
from spore.zlib.spec import (
    CODE_LENGTH_ORDER,
    DIST_BASE,
    DIST_EXTRA,
    FIXED_DIST_LENGTHS,
    FIXED_LITLEN_LENGTHS,
    LENGTH_BASE,
    LENGTH_EXTRA,
)

WINDOW_SIZE = 32768  # the most history DEFLATE can refer to (§3.2)
LIT_FAST_BITS = 10  # width of the one-lookup literal/length table
DIST_FAST_BITS = 9  # width of the one-lookup distance table
FAST_MIN_INPUT = 24  # bytes of input the fast path needs in hand (3 words)
FAST_OUTPUT_MARGIN = 258 + LIT_FAST_BITS  # the most one fast step can write
# Literal runs and full tables (build_litlen_tables) cost about 1 ms per block:
# build them once a block has spent this much input, so that they cost at most
# about what decoding that input costs (0.4 us per byte on ordinary data).
UPGRADE_AFTER_INPUT = 2048
CODE_CACHE_SIZE = 64  # dynamic codes kept, keyed by their code lengths

# Results of Inflater.run.
NEED_INPUT = 0  # all input consumed, stream not finished
OUTPUT_FULL = 1  # stopped because the output limit was reached
STREAM_END = 2
NEED_DICT = 3
DATA_ERROR = 4

# Modes, named after inflate.c's where they correspond.
HEAD = 0  # zlib or gzip header (or straight to TYPE for raw)
GZ_FLAGS = 1
GZ_TIME = 2
GZ_OS = 3
GZ_EXLEN = 4
GZ_EXTRA = 5
GZ_NAME = 6
GZ_COMMENT = 7
GZ_HCRC = 8
DICTID = 9
DICT = 10
TYPE = 11  # block header
STORED = 12  # copying a stored block
CODES = 13  # decoding literal/length/distance codes
CHECK = 14  # trailer check value
LENGTH = 15  # gzip trailer length
DONE = 16
BAD = 17

_BIG_DISTANCE = 1 << 40  # fast-table entry that sends a distance to the careful path


class _NeedInput(Exception):
    """Internal: the current step needs bytes that have not arrived yet."""


class _DataError(Exception):
    """Internal: the stream is malformed; args[0] is zlib's message."""


# --- Huffman tables ------------------------------------------------------------


def _reverse_bits(code: int, length: int) -> int:
    result = 0
    for _ in range(length):
        result = (result << 1) | (code & 1)
        code >>= 1
    return result


_REVERSED_BYTE = bytes(_reverse_bits(value, 8) for value in range(256))


def _reverse15(code: int, length: int) -> int:
    """_reverse_bits for codes of up to 15 bits, without a loop."""
    return (_REVERSED_BYTE[code & 255] << 8 | _REVERSED_BYTE[code >> 8]) >> (16 - length)


def canonical_codes(lengths: list[int] | tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(symbol, length, code) for each coded symbol, codes as RFC 1951 §3.2.2 assigns them."""
    count = [0] * 16
    for length in lengths:
        count[length] += 1
    count[0] = 0
    next_code = [0] * 16
    code = 0
    for n in range(1, 16):
        code = (code + count[n - 1]) << 1
        next_code[n] = code
    result = []
    for symbol, length in enumerate(lengths):
        if length:
            result.append((symbol, length, next_code[length]))
            next_code[length] += 1
    return result


def lengths_acceptable(lengths: list[int] | tuple[int, ...], is_code_length_code: bool) -> bool:
    """inftrees.c's rule: not over-subscribed; complete unless one 1-bit code (or none)."""
    count = [0] * 16
    for length in lengths:
        count[length] += 1
    return counts_acceptable(count, is_code_length_code)


def counts_acceptable(count: list[int], is_code_length_code: bool) -> bool:
    """lengths_acceptable, given ``count[n]``, the number of codes of length n."""
    longest = max((n for n in range(1, 16) if count[n]), default=0)
    if longest == 0:
        return True
    left = 1
    for n in range(1, 16):
        left = 2 * left - count[n]
        if left < 0:
            return False
    return not (left > 0 and (is_code_length_code or longest != 1))


def build_full_table(lengths: list[int] | tuple[int, ...], invalid_symbol: int) -> tuple[list[int], int]:
    """Every bit pattern of the longest code's width -> ``symbol << 4 | code length``.

    The table is indexed by the next ``width`` input bits (first bit lowest), so a
    code of length n with bit-reversed value r fills entries r, r + 2**n, r + 2*2**n...
    Patterns no code starts (an incomplete code's gap, or an empty code) read as
    ``invalid_symbol`` with length 1, as inftrees.c marks them.
    """
    width = max(max(lengths, default=0), 1)
    table = [invalid_symbol << 4 | 1] * (1 << width)
    for symbol, length, code in canonical_codes(lengths):
        table[_reverse15(code, length) :: 1 << length] = [symbol << 4 | length] * (1 << (width - length))
    return table, width


@lru_cache(maxsize=CODE_CACHE_SIZE)
def code_length_table(code_lengths: bytes) -> tuple[list[int], int]:
    """build_full_table for a code length code (§3.2.7), cached: there are few in practice.

    An empty code length code decodes every pattern as a 1-bit "0" (inflate.c quirk).
    """
    return build_full_table(code_lengths, 0)


# Fast literal/length entries are 5-tuples (kind, bits, value, extra_mask, total_bits):
#   kind 0: a run of literals; value is their bytes, bits the bits they take.
#   kind 1: a length code; length = value + ((hold >> bits) & extra_mask), and
#           total_bits = bits + extra bits.
#   kind 2: end of block.
#   kind 3: no decision here (a code longer than the table, or an invalid one).
_FAST_ESCAPE = (3, 0, 0, 0, 0)


def _litlen_fast_entry(symbol: int, length: int) -> tuple:
    if symbol < 256:
        return (0, length, bytes((symbol,)), 0, 0)
    if symbol == 256:
        return (2, length, 0, 0, 0)
    extra = LENGTH_EXTRA[symbol - 257]
    return (1, length, LENGTH_BASE[symbol - 257], (1 << extra) - 1, length + extra)


def build_litlen_tables(lengths: list[int] | tuple[int, ...]) -> tuple:
    """Full table, fast table (with literal runs) and their widths for a literal/length code."""
    full, full_bits = build_full_table(lengths, -1)
    fast_bits = min(LIT_FAST_BITS, full_bits)
    fast: list[tuple] = [_FAST_ESCAPE] * (1 << fast_bits)
    for symbol, length, code in canonical_codes(lengths):
        if length > fast_bits or symbol > 285:
            continue
        entry = _litlen_fast_entry(symbol, length)
        fast[_reverse_bits(code, length) :: 1 << length] = [entry] * (1 << (fast_bits - length))
    return full, full_bits, with_literal_runs(fast, fast_bits), fast_bits


def with_literal_runs(single: list[tuple], fast_bits: int) -> list[tuple]:
    """A copy of the fast table ``single`` whose literal entries hold runs of literals."""
    # After a literal's bits, if the bits left in the index decide another
    # literal, emit both with one lookup (and so on).
    fast = single[:]
    for index, entry in enumerate(single):
        if entry[0] != 0 or entry[1] >= fast_bits:
            continue
        used, run, rest = entry[1], entry[2], index >> entry[1]
        while True:
            follower = single[rest]
            if follower[0] != 0 or used + follower[1] > fast_bits:
                break
            run += follower[2]
            used += follower[1]
            rest >>= follower[1]
        if len(run) > 1:
            fast[index] = (0, used, run, 0, 0)
    return fast


def build_distance_tables(lengths: list[int] | tuple[int, ...]) -> tuple:
    """Full and fast tables for a distance code.

    Fast entries are (bits, base, extra_mask, total_bits); an entry the fast path
    cannot decide has a huge base, so the distance check sends it to the careful path.
    """
    full, full_bits = build_full_table(lengths, -1)
    fast_bits = min(DIST_FAST_BITS, full_bits)
    fast: list[tuple] = [_DIST_ESCAPE] * (1 << fast_bits)
    for symbol, length, code in canonical_codes(lengths):
        if length > fast_bits or symbol > 29:
            continue
        entry = _distance_fast_entry(symbol, length)
        fast[_reverse_bits(code, length) :: 1 << length] = [entry] * (1 << (fast_bits - length))
    return full, full_bits, fast, fast_bits


_DIST_ESCAPE = (0, _BIG_DISTANCE, 0, 0)


def _distance_fast_entry(symbol: int, length: int) -> tuple:
    extra = DIST_EXTRA[symbol]
    return (length, DIST_BASE[symbol], (1 << extra) - 1, length + extra)


# --- dynamic codes, built in stages (issue 13) -----------------------------------


class DynamicCode(NamedTuple):
    """A dynamic block's literal/length or distance code, as this module decodes it.

    ``count`` and ``symbols`` are puff.c's canonical description (the careful
    path decodes with them bit by bit); ``fast`` is the one-lookup table for
    the fast path, ``fast_bits`` wide. Building one costs a slice assignment per
    code of up to ``fast_bits`` bits and a search per coded symbol -- never
    2**width entries. ``upgraded`` adds what pays off only in a long block:
    literal runs in ``fast`` and the ``full`` table for the careful path.
    """

    count: list[int]  # count[n]: how many symbols have an n-bit code
    symbols: list[int]  # coded symbols, ordered by (code length, symbol)
    width: int  # the longest code length (at least 1)
    fast: list[tuple]
    fast_bits: int
    full: list[int] | None  # build_full_table's table, once the block has earned it


def _canonical_symbols(lengths: bytes, count: list[int]) -> list[int]:
    """The coded symbols by (length, symbol): one bytes.find per symbol, zeros skipped in C."""
    symbols = []
    for length in range(1, 16):
        position = -1
        for _ in range(count[length]):
            position = lengths.find(length, position + 1)
            symbols.append(position)
    return symbols


_CODE_CACHE: OrderedDict[bytes, DynamicCode] = OrderedDict()


def dynamic_code(lengths: bytes, count: list[int]) -> DynamicCode:
    """The code for ``lengths`` (acceptable, counted in ``count``), from the cache if there.

    A literal/length code has at least 257 lengths and a distance code at most
    30, so one cache keyed by the lengths serves both.
    """
    code = _CODE_CACHE.get(lengths)
    if code is not None:
        with contextlib.suppress(KeyError):  # another thread may have evicted it
            _CODE_CACHE.move_to_end(lengths)
        return code
    literal_length = len(lengths) > 30
    symbols = _canonical_symbols(lengths, count)
    width = max((n for n in range(1, 16) if count[n]), default=1)
    if literal_length:
        fast_bits, escape, entry_of, last = min(LIT_FAST_BITS, width), _FAST_ESCAPE, _litlen_fast_entry, 285
    else:
        fast_bits, escape, entry_of, last = min(DIST_FAST_BITS, width), _DIST_ESCAPE, _distance_fast_entry, 29
    fast = [escape] * (1 << fast_bits)
    value = taken = 0
    for length in range(1, fast_bits + 1):
        for symbol in symbols[taken : taken + count[length]]:
            if symbol <= last:
                fast[_reverse15(value, length) :: 1 << length] = [entry_of(symbol, length)] * (
                    1 << (fast_bits - length)
                )
            value += 1
        taken += count[length]
        value <<= 1
    code = DynamicCode(count, symbols, width, fast, fast_bits, None)
    _remember(lengths, code)
    return code


def upgraded(lengths: bytes, code: DynamicCode) -> DynamicCode:
    """``code`` with its full table and, for a literal/length code, literal runs (cached in its place)."""
    if code.full is not None:
        return code
    fast = with_literal_runs(code.fast, code.fast_bits) if len(lengths) > 30 else code.fast
    better = code._replace(fast=fast, full=build_full_table(lengths, -1)[0])
    _remember(lengths, better)
    return better


def _remember(lengths: bytes, code: DynamicCode) -> None:
    _CODE_CACHE[lengths] = code
    while len(_CODE_CACHE) > CODE_CACHE_SIZE:
        with contextlib.suppress(KeyError):
            _CODE_CACHE.popitem(last=False)


_FIXED_TABLES: tuple | None = None


def _fixed_tables() -> tuple:
    global _FIXED_TABLES
    if _FIXED_TABLES is None:
        _FIXED_TABLES = build_litlen_tables(FIXED_LITLEN_LENGTHS) + build_distance_tables(FIXED_DIST_LENGTHS)
    return _FIXED_TABLES


# --- the fast loop -------------------------------------------------------------

if sys.byteorder == "little":

    def _words(buf: bytes) -> memoryview | array:
        whole = len(buf) & ~7
        return memoryview(buf)[:whole].cast("Q")

else:  # pragma: no cover - big-endian hosts

    def _words(buf: bytes) -> memoryview | array:
        whole = len(buf) & ~7
        words = array("Q", buf[:whole])
        words.byteswap()
        return words


def _fast_codes(
    words: memoryview | array,
    i: int,
    hold: int,
    nbits: int,
    out: bytearray,
    out_end: int,
    floor: int,
    tables: tuple,
) -> tuple[int, int, int, bool]:
    """Decode symbols while input and output room are plentiful.

    Requires ``i`` to be a multiple of 8 (the next byte to pull is the start of
    a word). A match may copy from ``out[floor:]`` only. Returns (hold, nbits,
    i, at_end_of_block); when it returns without reaching end-of-block, the next
    symbol is for the careful path, with ``hold`` holding its bits from the start.
    """
    _, _, lit_fast, lit_bits, _, _, dist_fast, dist_bits = tables
    lit_mask = (1 << lit_bits) - 1
    dist_mask = (1 << dist_bits) - 1
    j = i >> 3
    last_word = len(words) - 2  # a step loads at most two words
    while j < last_word and len(out) < out_end:
        if nbits < 32:
            hold |= words[j] << nbits
            j += 1
            nbits += 64
        kind, bits, value, extra_mask, total = lit_fast[hold & lit_mask]
        if kind == 0:  # literal(s)
            out += value
            hold >>= bits
            nbits -= bits
            continue
        if kind == 1:  # length, then a distance
            saved = hold, nbits, j
            length = value + ((hold >> bits) & extra_mask)
            hold >>= total
            nbits -= total
            if nbits < 28:
                hold |= words[j] << nbits
                j += 1
                nbits += 64
            dbits, base, extra_mask, total = dist_fast[hold & dist_mask]
            start = len(out) - base - ((hold >> dbits) & extra_mask)
            if start < floor:  # too far back, or not decidable here: careful path
                hold, nbits, j = saved
                return hold, nbits, j << 3, False
            hold >>= total
            nbits -= total
            if start + length <= len(out):
                out += out[start : start + length]
            else:  # overlapping: the copy repeats the last `distance` bytes
                pattern = out[start:]
                out += (pattern * (length // len(pattern) + 1))[:length]
            continue
        if kind == 2:
            return hold >> bits, nbits - bits, j << 3, True
        return hold, nbits, j << 3, False
    return hold, nbits, j << 3, False


# --- the resumable decoder -------------------------------------------------------


class Inflater:
    """DEFLATE with zlib/gzip/raw framing, fed input and output room piece by piece.

    ``framing`` is "raw", "zlib", "gzip" or "auto"; ``window_bits`` 8..15, or 0
    to take it from the zlib header. This is the engine; the zlib-module API
    (argument checking, unconsumed_tail, unused_data, error wording) is in
    ``spore.zlib.decompressor``.
    """

    def __init__(self, framing: str, window_bits: int) -> None:
        self.framing = framing
        self.window_bits = window_bits
        self.mode = TYPE if framing == "raw" else HEAD
        self.is_gzip = False
        self.hold = 0
        self.nbits = 0
        self.carry = b""  # input zlib would have absorbed but we have not used yet
        self.history = b""  # up to WINDOW_SIZE bytes a distance may reach
        self.history_total = 0  # bytes of history ever: dictionary + output
        self.last = False  # the current block is the final one
        self.tables: tuple = ()
        # A dynamic block's codes (None in a fixed block, whose tables are full)
        # and the input its codes have consumed so far (see UPGRADE_AFTER_INPUT).
        self.litlen_code: DynamicCode | None = None
        self.distance_code: DynamicCode | None = None
        self.litlen_lengths = self.distance_lengths = b""
        self.block_input = 0
        self.stored_left = 0
        self.pending_literal = -1  # a literal decoded when the output was full
        self.pending_length = 0  # rest of a match still to copy
        self.pending_distance = 0
        self.check = 0  # running Adler-32 or CRC-32 of the output
        self.total = 0  # output length so far (gzip ISIZE is its low 32 bits)
        self.gz_flags = 0
        self.gz_header_crc = 0
        self.gz_extra_left = 0
        self.dictid = 0
        self.message = ""
        # per-call working state (see run)
        self.buf = b""  # carried input + this call's input
        self.i = 0  # next byte of buf to pull into hold
        self.check_from = 0  # first byte of out not yet in the check value
        self._base = 0  # where this call's output starts in out (after the history)
        self._blocks: Iterator[int] = iter(())  # sizes of the output buffers still to come
        self._next_boundary = 0  # where the current simulated inflate() call's buffer ends
        self._floor = 0  # earliest byte of out a distance may reach in the current call

    def copy(self) -> Inflater:
        other = Inflater.__new__(Inflater)
        other.__dict__.update(self.__dict__)
        return other

    def set_dictionary(self, zdict: bytes) -> bool:
        """inflateSetDictionary: False if a zlib header named a different dictionary."""
        if self.mode == DICT:
            if adler32(zdict) != self.dictid:
                return False
            self.mode = TYPE
        self.history = bytes(zdict[-(1 << (self.window_bits or 15)) :])
        self.history_total = len(self.history)
        return True

    # -- driving ----------------------------------------------------------------

    def run(
        self, data: bytes | memoryview, limit: int | None, blocks: Iterator[int] | None = None
    ) -> tuple[bytes, int, int]:
        """Feed ``data``; write at most ``limit`` bytes (None: no limit).

        ``blocks`` are the sizes of the output buffers the caller would hand C
        zlib's inflate() one call at a time (see "window rule" below); None is
        one unbounded buffer. Returns (output, status, consumed): how many bytes
        of ``data`` inflate would have taken, the rest being the caller's to keep
        (as unconsumed_tail, or unused_data after STREAM_END).

        Window rule: a distance is valid if it reaches no further back than the
        bytes written in the current inflate() call plus the window inflate had
        when the call began (the last 2**wbits bytes of history). With a 32 KiB
        window that is simply "not before the start of the history"; with a
        smaller one it depends on the call boundaries, which ``blocks`` gives.
        """
        if self.mode == DONE:
            return b"", STREAM_END, 0
        if self.mode == BAD:
            return b"", DATA_ERROR, 0
        carried = len(self.carry)
        self.buf = buf = self.carry + bytes(data) if carried else bytes(data)
        self.i = 0
        out = bytearray(self.history)
        base = len(out)
        self.check_from = base
        out_end = sys.maxsize if limit is None else base + limit
        self._base = base
        self._blocks = blocks if blocks is not None else iter(())
        self._next_boundary = base
        self._advance_calls(base)
        try:
            status = self._run_modes(out, out_end)
        except _NeedInput:
            status = NEED_INPUT
        except _DataError as exc:
            self.message = exc.args[0]
            self.mode = BAD
            status = DATA_ERROR
        self._update_check(out)
        with memoryview(out) as view:
            produced = bytes(view[base:])
        self.history = bytes(out[-WINDOW_SIZE:])
        self.history_total += len(produced)
        self._blocks = iter(())
        if status != DATA_ERROR:
            # Give back whole bytes pulled ahead: C zlib never holds 8 spare bits
            # when it returns, and held bits must come before the next buffer.
            # (After an error zlib keeps what it pulled to find the error.)
            self._give_back_whole_bytes()
        if status == NEED_INPUT:
            self.carry = buf[self.i :]
            consumed = len(data)
        else:
            self.carry = buf[self.i : carried] if self.i < carried else b""
            consumed = max(self.i - carried, 0)
        self.buf = b""
        return produced, status, consumed

    def _advance_calls(self, position: int) -> None:
        """Start the inflate() calls whose output buffers begin at or before ``position``."""
        while position >= self._next_boundary:
            call_start = self._next_boundary
            history = self.history_total + call_start - self._base
            self._floor = call_start - min(1 << (self.window_bits or 15), history)
            self._next_boundary = call_start + next(self._blocks, sys.maxsize)

    def _give_back_whole_bytes(self) -> None:
        spare = self.nbits >> 3
        self.i -= spare
        self.nbits -= spare << 3
        self.hold &= (1 << self.nbits) - 1

    def _update_check(self, out: bytearray) -> None:
        start = self.check_from
        if start < len(out) and self.framing != "raw":
            chunk = memoryview(out)[start:]
            if self.is_gzip:
                self.check = crc32(chunk, self.check)
            else:
                self.check = adler32(chunk, self.check)
            self.total += len(chunk)
            chunk.release()
        self.check_from = len(out)

    # -- bits -------------------------------------------------------------------

    def _need(self, count: int) -> None:
        """Pull bytes until ``count`` bits are held (inflate.c's NEEDBITS)."""
        while self.nbits < count:
            if self.i >= len(self.buf):
                raise _NeedInput()
            self.hold |= self.buf[self.i] << self.nbits
            self.i += 1
            self.nbits += 8

    def _take(self, count: int) -> int:
        """The next ``count`` held bits (after _need), dropped from the hold."""
        value = self.hold & ((1 << count) - 1)
        self.hold >>= count
        self.nbits -= count
        return value

    def _bits(self, count: int) -> int:
        self._need(count)
        return self._take(count)

    def _byte_bits(self, count: int) -> int:
        """Like _bits, adding the header bytes to the gzip header CRC when FHCRC is set."""
        value = self._bits(count)
        if self.gz_flags & 0x0200:
            self.gz_header_crc = crc32(value.to_bytes(count >> 3, "little"), self.gz_header_crc)
        return value

    def _snapshot(self) -> tuple[int, int, int]:
        return self.hold, self.nbits, self.i

    def _restore(self, snapshot: tuple[int, int, int]) -> None:
        self.hold, self.nbits, self.i = snapshot

    # -- the mode machine -------------------------------------------------------

    def _run_modes(self, out: bytearray, out_end: int) -> int:
        while True:
            mode = self.mode
            if mode == CODES:
                if self._codes(out, out_end):
                    return OUTPUT_FULL
            elif mode == TYPE:
                self._block_header()
            elif mode == STORED:
                if self._stored_copy(out, out_end):
                    return OUTPUT_FULL
            elif mode == HEAD:
                self._header()
            elif GZ_FLAGS <= mode <= GZ_HCRC:
                self._gzip_header_field()
            elif mode == DICTID:
                self._need(32)
                self.dictid = int.from_bytes(self._take(32).to_bytes(4, "little"), "big")
                self.mode = DICT
            elif mode == DICT:
                return NEED_DICT
            elif mode == CHECK:
                self._check_trailer(out)
            elif mode == LENGTH:
                self._need(32)
                if self._take(32) != self.total & 0xFFFFFFFF:
                    raise _DataError("incorrect length check")
                self.mode = DONE
            elif mode == DONE:
                return STREAM_END
            else:  # pragma: no cover - BAD is handled by run()
                raise _DataError(self.message)

    def _header(self) -> None:
        self._need(16)
        if self.framing in ("gzip", "auto") and self.hold & 0xFFFF == 0x8B1F:
            self.is_gzip = True
            if self.window_bits == 0:
                self.window_bits = 15
            self.gz_header_crc = crc32(b"\x1f\x8b")
            self.check = 0
            self._take(16)
            self.mode = GZ_FLAGS
            return
        if self.framing == "gzip":
            raise _DataError("incorrect header check")
        cmf, flg = self.hold & 0xFF, (self.hold >> 8) & 0xFF
        if (cmf << 8 | flg) % 31:
            raise _DataError("incorrect header check")
        if cmf & 15 != 8:
            raise _DataError("unknown compression method")
        window = (cmf >> 4) + 8
        if self.window_bits == 0:
            self.window_bits = window
        if window > 15 or window > self.window_bits:
            raise _DataError("invalid window size")
        self._take(16)
        self.check = 1  # Adler-32 of nothing
        self.mode = DICTID if flg & 0x20 else TYPE

    def _gzip_header_field(self) -> None:
        mode = self.mode
        if mode == GZ_FLAGS:
            self._need(16)
            method, flags = self.hold & 0xFF, (self.hold >> 8) & 0xFF
            if method != 8:
                raise _DataError("unknown compression method")
            if flags & 0xE0:
                raise _DataError("unknown header flags set")
            self.gz_flags = flags << 8 | method
            self._byte_bits(16)
            self.mode = GZ_TIME
        elif mode == GZ_TIME:
            self._need(32)
            self._byte_bits(32)
            self.mode = GZ_OS
        elif mode == GZ_OS:
            self._need(16)
            self._byte_bits(16)
            self.mode = GZ_EXLEN
        elif mode == GZ_EXLEN:
            if self.gz_flags & 0x0400:
                self._need(16)
                self.gz_extra_left = self._byte_bits(16)
            self.mode = GZ_EXTRA
        elif mode == GZ_EXTRA:
            # Byte by byte, so a huge FEXTRA never has to be held at once.
            while self.gz_flags & 0x0400 and self.gz_extra_left:
                self._need(8)
                self._byte_bits(8)
                self.gz_extra_left -= 1
            self.mode = GZ_NAME
        elif mode in (GZ_NAME, GZ_COMMENT):
            flag = 0x0800 if mode == GZ_NAME else 0x1000
            if self.gz_flags & flag:
                while True:
                    self._need(8)
                    if self._byte_bits(8) == 0:
                        break
            self.mode += 1
        else:  # GZ_HCRC
            if self.gz_flags & 0x0200:
                self._need(16)
                if self._take(16) != self.gz_header_crc & 0xFFFF:
                    raise _DataError("header crc mismatch")
            self.check = 0  # CRC-32 of nothing
            self.mode = TYPE

    def _block_header(self) -> None:
        if self.last:
            # The final block is done: skip to a byte boundary; the trailer follows.
            self._take(self.nbits & 7)
            self.mode = CHECK if self.framing != "raw" else DONE
            return
        snapshot = self._snapshot()
        try:
            self._need(3)
            last = self._take(1)
            block_type = self._take(2)
            if block_type == 0:
                self._stored_header()
            elif block_type == 1:
                self.tables = _fixed_tables()
                self.litlen_code = self.distance_code = None
                self.mode = CODES
            elif block_type == 2:
                self._dynamic_header()
                self.mode = CODES
            else:
                raise _DataError("invalid block type")
        except _NeedInput:
            self._restore(snapshot)
            raise
        self.last = bool(last)

    def _stored_header(self) -> None:
        self._take(self.nbits & 7)
        self._need(32)
        length = self._take(16)
        if length != self._take(16) ^ 0xFFFF:
            raise _DataError("invalid stored block lengths")
        self.stored_left = length
        self.mode = STORED

    def _stored_copy(self, out: bytearray, out_end: int) -> bool:
        """Copy a stored block's bytes; True if the output filled first."""
        # Whole bytes may still be held from a previous step: give them back first.
        spare = self.nbits >> 3
        self.i -= spare
        self.hold = 0
        self.nbits = 0
        while self.stored_left:
            room = out_end - len(out)
            available = len(self.buf) - self.i
            count = min(self.stored_left, room, available)
            if count == 0:
                if room == 0:
                    return True
                raise _NeedInput()
            out += self.buf[self.i : self.i + count]
            self.i += count
            self.stored_left -= count
        self.mode = TYPE
        return False

    def _dynamic_header(self) -> None:
        """§3.2.7, with inflate.c's checks in inflate.c's order."""
        self._need(14)
        nlen = self._take(5) + 257
        ndist = self._take(5) + 1
        ncode = self._take(4) + 4
        if nlen > 286 or ndist > 30:
            raise _DataError("too many length or distance symbols")
        code_lengths = [0] * 19
        for index in range(ncode):
            code_lengths[CODE_LENGTH_ORDER[index]] = self._bits(3)
        if not lengths_acceptable(code_lengths, True):
            raise _DataError("invalid code lengths set")
        table, width = code_length_table(bytes(code_lengths))
        lengths: list[int] = []
        total = nlen + ndist
        while len(lengths) < total:
            symbol, bits = self._decode(table, width)
            if symbol < 16:
                self._take(bits)
                lengths.append(symbol)
                continue
            extra = (2, 3, 7)[symbol - 16]
            self._need(bits + extra)
            self._take(bits)
            if symbol == 16 and not lengths:  # checked before its extra bits are dropped
                raise _DataError("invalid bit length repeat")
            repeat = (3, 3, 11)[symbol - 16] + self._take(extra)
            value = lengths[-1] if symbol == 16 else 0
            if len(lengths) + repeat > total:
                raise _DataError("invalid bit length repeat")
            lengths.extend([value] * repeat)
        if lengths[256] == 0:
            raise _DataError("invalid code -- missing end-of-block")
        litlen, distance = bytes(lengths[:nlen]), bytes(lengths[nlen:])
        litlen_count = [litlen.count(n) for n in range(16)]
        if not counts_acceptable(litlen_count, False):
            raise _DataError("invalid literal/lengths set")
        distance_count = [distance.count(n) for n in range(16)]
        if not counts_acceptable(distance_count, False):
            raise _DataError("invalid distances set")
        self._use_codes(dynamic_code(litlen, litlen_count), dynamic_code(distance, distance_count))
        self.litlen_lengths, self.distance_lengths = litlen, distance
        self.block_input = 0

    def _use_codes(self, litlen_code: DynamicCode, distance_code: DynamicCode) -> None:
        self.litlen_code, self.distance_code = litlen_code, distance_code
        lit, dist = litlen_code, distance_code
        self.tables = (lit.full, lit.width, lit.fast, lit.fast_bits, dist.full, dist.width, dist.fast, dist.fast_bits)

    def _check_trailer(self, out: bytearray) -> None:
        self._need(32)
        self._update_check(out)
        value = self._take(32)
        if not self.is_gzip:
            value = int.from_bytes(value.to_bytes(4, "little"), "big")
        if value != self.check:
            raise _DataError("incorrect data check")
        self.mode = LENGTH if self.is_gzip else DONE

    # -- codes ------------------------------------------------------------------

    def _flush_pending(self, out: bytearray, out_end: int) -> bool:
        """Write what was decoded when the output was full; True if it still does not fit."""
        if self.pending_literal >= 0:
            if len(out) >= out_end:
                return True
            out.append(self.pending_literal)
            self.pending_literal = -1
        while self.pending_length:
            if len(out) >= out_end:
                return True
            self._advance_calls(len(out))
            distance = self.pending_distance
            start = len(out) - distance
            if start < self._floor:
                raise _DataError("invalid distance too far back")
            count = min(min(out_end, self._next_boundary) - len(out), self.pending_length)
            if start + count <= len(out):
                out += out[start : start + count]
            else:
                pattern = out[start:]
                out += (pattern * (count // len(pattern) + 1))[:count]
            self.pending_length -= count
        return False

    def _codes(self, out: bytearray, out_end: int) -> bool:
        """Decode the current block's codes; True if stopped by a full output."""
        if (self.pending_literal >= 0 or self.pending_length) and self._flush_pending(out, out_end):
            return True
        start = self.i
        try:
            return self._codes_loop(out, out_end, start)
        finally:
            self.block_input += self.i - start

    def _codes_loop(self, out: bytearray, out_end: int, start: int) -> bool:
        words = None
        while True:
            if len(self.buf) - self.i >= FAST_MIN_INPUT:
                self._advance_calls(len(out))
                fast_out_end = min(out_end, self._next_boundary) - FAST_OUTPUT_MARGIN
                if len(out) < fast_out_end:
                    if words is None:
                        words = _words(self.buf)
                    limited = words
                    code = self.litlen_code
                    if code is not None and code.full is None:
                        # Stop the fast path when the block has spent UPGRADE_AFTER_INPUT bytes.
                        left = UPGRADE_AFTER_INPUT - self.block_input - (self.i - start)
                        if left <= 0:
                            self._use_codes(upgraded(self.litlen_lengths, code),
                                            upgraded(self.distance_lengths, self.distance_code))  # fmt: skip
                        else:
                            limited = words[: ((self.i + left) >> 3) + 2]
                    if self._fast(limited, out, fast_out_end):
                        self.mode = TYPE
                        return False
            snapshot = self._snapshot()
            try:
                result = self._slow_symbol(out, out_end)
            except _NeedInput:
                self._restore(snapshot)
                raise
            if result is not None:
                return result

    def _fast(self, words: memoryview | array, out: bytearray, out_end: int) -> bool:
        """Run _fast_codes from the current position; True if it reached end-of-block."""
        hold, nbits, i = self.hold, self.nbits, self.i
        buf = self.buf
        while i & 7:  # align to a word
            hold |= buf[i] << nbits
            i += 1
            nbits += 8
        hold, nbits, i, at_eob = _fast_codes(words, i, hold, nbits, out, out_end, self._floor, self.tables)
        # Give back the words read ahead, as inflate_fast does on exit, so that
        # the slow path pulls bytes exactly as zlib's does.
        self.i = i - (nbits >> 3)
        self.nbits = nbits & 7
        self.hold = hold & ((1 << self.nbits) - 1)
        return at_eob

    def _decode(self, table: list[int], width: int) -> tuple[int, int]:
        """One Huffman code: (symbol, length), pulling bytes until the code is complete.

        The table is indexed with whatever bits are held (missing ones read as
        0); the entry found is the right one as soon as its code length is
        covered by held bits -- inflate.c's loop, which decides how much input a
        truncated stream has consumed.
        """
        mask = (1 << width) - 1
        while True:
            entry = table[self.hold & mask]
            if entry & 15 <= self.nbits:
                return entry >> 4, entry & 15
            self._need(self.nbits + 1)

    def _decode_canonical(self, code: DynamicCode) -> tuple[int, int]:
        """_decode for a dynamic code, bit by bit as puff.c's decode (spec.decode).

        Pulls a byte exactly when _decode would: when the held bits do not yet
        complete a code. Gives (-1, 1) for a pattern no code starts, as
        _decode's table does; for an acceptable code that happens only at the
        longest length (an incomplete code is a single 1-bit one, or empty).
        """
        count, symbols, width = code.count, code.symbols, code.width
        hold, nbits = self.hold, self.nbits
        value = first = index = 0
        length = 1
        while True:
            if length > nbits:
                self._need(nbits + 1)
                hold, nbits = self.hold, self.nbits
            value |= (hold >> (length - 1)) & 1
            here = count[length]
            if value - first < here:
                return symbols[index + value - first], length
            if length >= width:
                return -1, 1
            index += here
            first = (first + here) << 1
            value <<= 1
            length += 1

    def _slow_symbol(self, out: bytearray, out_end: int) -> bool | None:
        """Decode one literal, end-of-block or length/distance pair, inflate.c's slow way.

        Returns None to go on, True if the output is full (what was decoded is
        pending), False at end-of-block. Raises _NeedInput with the bits of the
        symbol partly taken; the caller restores the position.
        """
        lit_full, lit_width, _, _, dist_full, dist_width, _, _ = self.tables
        if lit_full is None:
            symbol, bits = self._decode_canonical(self.litlen_code)
        else:
            symbol, bits = self._decode(lit_full, lit_width)
        self._take(bits)
        if 0 <= symbol < 256:
            if len(out) >= out_end:
                self.pending_literal = symbol
                return True
            out.append(symbol)
            return None
        if symbol == 256:
            self.mode = TYPE
            return False
        if symbol < 0 or symbol > 285:
            raise _DataError("invalid literal/length code")
        extra = LENGTH_EXTRA[symbol - 257]
        length = LENGTH_BASE[symbol - 257] + self._bits(extra)
        if dist_full is None:
            symbol, bits = self._decode_canonical(self.distance_code)
        else:
            symbol, bits = self._decode(dist_full, dist_width)
        self._take(bits)
        if symbol < 0 or symbol > 29:
            raise _DataError("invalid distance code")
        distance = DIST_BASE[symbol] + self._bits(DIST_EXTRA[symbol])
        self.pending_length = length
        self.pending_distance = distance
        return True if self._flush_pending(out, out_end) else None
