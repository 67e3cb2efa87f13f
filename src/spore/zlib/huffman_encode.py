"""The back half of DEFLATE: turning LZ77 symbols into blocks of bits (RFC 1951 §3.2).

The LZ77 stage (lz77.py) hands over a block as a list of *tokens*: an int below
256 is a literal byte, anything else is a match packed as
``(length << 16) | distance``. This module chooses, per block, the smallest of
the three block types, as zlib does:

* stored (BTYPE 00, §3.2.4): the raw bytes, byte-aligned, at most 65535 a piece;
* fixed Huffman (BTYPE 01, §3.2.6): the code the RFC fixes, no header;
* dynamic Huffman (BTYPE 10, §3.2.7): codes built from the block's own symbol
  frequencies, limited to 15 bits, sent as run-length-coded code lengths that
  are themselves Huffman-coded with a code limited to 7 bits.

Bits are kept as a ``str`` of ``"0"``/``"1"`` in stream order. That sounds
wasteful but is what makes pure Python fast here: a whole block body is one
``"".join(map(table.__getitem__, tokens))`` (a loop in C), and turning the string
into bytes is one ``int(bits[::-1], 2)`` (linear for base 2).
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter

from .constants import MAX_WBITS
from .lz77 import MAX_MATCH
from .spec import (
    CODE_LENGTH_ORDER,
    DIST_BASE,
    DIST_EXTRA,
    END_OF_BLOCK,
    FIXED_DIST_LENGTHS,
    FIXED_LITLEN_LENGTHS,
    LENGTH_BASE,
    LENGTH_EXTRA,
    MAXBITS,
    MAXDCODES,
    MAXLCODES,
)

# The code tables of §3.2.5-3.2.7 are the reference decoder's (spec.py).
MAX_DISTANCE = 1 << MAX_WBITS
MAX_CODE_LENGTH_CODE_BITS = 7  # HCLEN code lengths are 3-bit fields (§3.2.7)
MAX_STORED = 65535  # §3.2.4: LEN is 16 bits


def lsb_first(value: int, nbits: int) -> str:
    """``value`` as ``nbits`` stream bits; header fields and extra bits go LSB first (§3.1.1)."""
    return format(value, f"0{nbits}b")[::-1] if nbits else ""


def _extra_bits_tables(
    bases: tuple[int, ...], extras: tuple[int, ...], first_symbol: int, largest: int
) -> tuple[list[int], list[str], list[int]]:
    """For each value 0..largest: its symbol, its extra bits as stream bits, and their count (§3.2.5)."""
    symbol = [0] * (largest + 1)
    extra = [""] * (largest + 1)
    nextra = [0] * (largest + 1)
    for code, (base, bits) in enumerate(zip(bases, extras, strict=True)):
        for offset in range(1 << bits):
            value = base + offset
            # Length code 284 with extra bits 31 would spell 258, but §3.2.5 gives
            # 258 its own code, 285, which comes later and so has the last word.
            if value <= largest:
                symbol[value] = first_symbol + code
                extra[value] = lsb_first(offset, bits)
                nextra[value] = bits
    return symbol, extra, nextra


# Indexed by match length (3..258) and by distance (1..32768).
LENGTH_SYMBOL, LENGTH_EXTRA_STREAM, LENGTH_EXTRA_COUNT = _extra_bits_tables(LENGTH_BASE, LENGTH_EXTRA, 257, MAX_MATCH)
DISTANCE_SYMBOL, DISTANCE_EXTRA_STREAM, DISTANCE_EXTRA_COUNT = _extra_bits_tables(
    DIST_BASE, DIST_EXTRA, 0, MAX_DISTANCE
)

# --- Huffman code construction --------------------------------------------------


def build_length_limited_code(freqs: list[int], max_bits: int) -> list[int]:
    """Optimal code lengths for ``freqs`` with none longer than ``max_bits``.

    Package-merge (Larmore and Hirschberg, 1990): a code of lengths at most L is
    a choice of "coins" of width 2^-1 .. 2^-L whose widths sum to n - 1; the
    cheapest such choice takes the 2n - 2 lightest items of the list built by
    L - 1 rounds of "pair up neighbours into packages, merge back with the
    leaves". A symbol's length is how many chosen items it occurs in.
    Symbols of frequency zero get length zero. One used symbol gets length 1
    (the callers make sure that never happens for a code that must be complete).
    """
    leaves = sorted((freq, symbol) for symbol, freq in enumerate(freqs) if freq)
    lengths = [0] * len(freqs)
    if len(leaves) <= 1:
        for _, symbol in leaves:
            lengths[symbol] = 1
        return lengths
    if len(leaves) > 1 << max_bits:
        raise ValueError(f"{len(leaves)} symbols do not fit in a {max_bits}-bit code")
    levels = [leaves]
    for _ in range(max_bits - 1):
        below = levels[-1]
        packages = [(below[i][0] + below[i + 1][0], -1) for i in range(0, len(below) - 1, 2)]
        # Stable sort on weight alone keeps packages in the order they were made,
        # which the walk back below relies on.
        levels.append(sorted(leaves + packages, key=itemgetter(0)))
    take = 2 * len(leaves) - 2
    for items in reversed(levels):
        packages_taken = 0
        for _, symbol in items[:take]:
            if symbol >= 0:
                lengths[symbol] += 1
            else:
                packages_taken += 1
        # The first k packages of a level were made from its predecessor's first 2k items.
        take = 2 * packages_taken
    return lengths


def canonical_codes(lengths: list[int] | tuple[int, ...]) -> list[str]:
    """The codes RFC 1951 §3.2.2 assigns to ``lengths``, as stream bits (MSB first)."""
    max_len = max(lengths, default=0)
    bl_count = [0] * (max_len + 1)
    for length in lengths:
        bl_count[length] += 1
    bl_count[0] = 0
    next_code = [0] * (max_len + 2)
    code = 0
    for bits in range(1, max_len + 1):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    codes = [""] * len(lengths)
    for symbol, length in enumerate(lengths):
        if length:
            # Huffman codes are packed starting with their most significant bit.
            codes[symbol] = format(next_code[length], f"0{length}b")
            next_code[length] += 1
    return codes


def complete_code_lengths(freqs: list[int], max_bits: int) -> list[int]:
    """Code lengths for a code every decoder accepts: at least two used symbols.

    zlib's inflate rejects incomplete codes (but for a lone 1-bit code, and
    never for code length codes), and one used symbol gives an incomplete
    code, so, like zlib's build_tree, we pretend one or two more symbols occur.
    """
    freqs = list(freqs)
    for symbol in (0, 1):
        if sum(1 for freq in freqs if freq) >= 2:
            break
        if not freqs[symbol]:
            freqs[symbol] = 1
    return build_length_limited_code(freqs, max_bits)


FIXED_LITLEN_CODES = canonical_codes(FIXED_LITLEN_LENGTHS)
FIXED_DISTANCE_CODES = canonical_codes(FIXED_DIST_LENGTHS)


# --- Dynamic block header (§3.2.7) ---------------------------------------------


def run_length_encode(lengths: list[int]) -> list[tuple[int, int, int]]:
    """Code lengths as code-length-alphabet symbols: (symbol, extra value, extra bits).

    16 repeats the previous length 3..6 times, 17 repeats zero 3..10 times and
    18 repeats zero 11..138 times. Runs may cross from the literal/length
    lengths into the distance lengths: §3.2.7 treats them as one sequence.
    """
    out: list[tuple[int, int, int]] = []
    i = 0
    n = len(lengths)
    while i < n:
        value = lengths[i]
        run = 1
        while i + run < n and lengths[i + run] == value:
            run += 1
        i += run
        if value == 0:
            while run >= 11:
                step = min(run, 138)
                out.append((18, step - 11, 7))
                run -= step
            if run >= 3:
                out.append((17, run - 3, 3))
                run = 0
        else:
            out.append((value, 0, 0))
            run -= 1
            while run >= 3:
                step = min(run, 6)
                out.append((16, step - 3, 2))
                run -= step
        out.extend((value, 0, 0) for _ in range(run))
    return out


def dynamic_header(litlen_lengths: list[int], distance_lengths: list[int]) -> str:
    """HLIT, HDIST, HCLEN, the code length code and the coded lengths, as stream bits."""
    hlit = max(257, max(s for s, n in enumerate(litlen_lengths) if n) + 1)
    hdist = max(1, max((s for s, n in enumerate(distance_lengths) if n), default=0) + 1)
    runs = run_length_encode(litlen_lengths[:hlit] + distance_lengths[:hdist])
    cl_freqs = [0] * 19
    for symbol, _, _ in runs:
        cl_freqs[symbol] += 1
    cl_lengths = complete_code_lengths(cl_freqs, MAX_CODE_LENGTH_CODE_BITS)
    cl_codes = canonical_codes(cl_lengths)
    hclen = 19
    while hclen > 4 and cl_lengths[CODE_LENGTH_ORDER[hclen - 1]] == 0:
        hclen -= 1
    parts = [lsb_first(hlit - 257, 5), lsb_first(hdist - 1, 5), lsb_first(hclen - 4, 4)]
    parts.extend(lsb_first(cl_lengths[CODE_LENGTH_ORDER[i]], 3) for i in range(hclen))
    parts.extend(cl_codes[symbol] + lsb_first(value, nbits) for symbol, value, nbits in runs)
    return "".join(parts)


# --- Bit output -----------------------------------------------------------------


def bits_to_bytes(bits: str) -> bytes:
    """Stream bits (a multiple of 8) to bytes, each byte filled from its LSB (§3.1.1)."""
    if not bits:
        return b""
    return int(bits[::-1], 2).to_bytes(len(bits) >> 3, "little")


class BitWriter:
    """Collects output; holds back the last 0..7 bits that do not make a whole byte."""

    def __init__(self) -> None:
        self.pending = ""
        self.chunks: list[bytes] = []

    def write(self, bits: str) -> None:
        bits = self.pending + bits
        whole = len(bits) & ~7
        if whole:
            self.chunks.append(bits_to_bytes(bits[:whole]))
        self.pending = bits[whole:]

    def align_to_byte(self) -> None:
        if self.pending:
            self.write("0" * (8 - len(self.pending)))

    def write_bytes(self, data: bytes) -> None:
        assert not self.pending, "raw bytes only go on a byte boundary"
        self.chunks.append(data)

    def take_output(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks = []
        return out

    def copy(self) -> BitWriter:
        twin = BitWriter()
        twin.pending = self.pending
        twin.chunks = list(self.chunks)
        return twin


# --- Blocks -----------------------------------------------------------------------


def block_header(final: bool, btype: int) -> str:
    """BFINAL then BTYPE, both LSB first (§3.2.3)."""
    return ("1" if final else "0") + lsb_first(btype, 2)


def emit_stored_block(writer: BitWriter, raw: bytes, final: bool) -> None:
    """One or more stored blocks (§3.2.4): aligned, LEN, NLEN, the bytes."""
    pieces = [raw[i : i + MAX_STORED] for i in range(0, len(raw), MAX_STORED)] or [b""]
    for index, piece in enumerate(pieces):
        writer.write(block_header(final and index == len(pieces) - 1, 0))
        writer.align_to_byte()
        n = len(piece)
        writer.write_bytes(n.to_bytes(2, "little") + (n ^ 0xFFFF).to_bytes(2, "little") + piece)


def stored_cost(raw_length: int, bit_offset: int) -> int:
    """Bits a stored encoding of ``raw_length`` bytes takes when started at ``bit_offset``."""
    pieces = max(1, -(-raw_length // MAX_STORED))
    first_pad = (8 - (bit_offset + 3) % 8) % 8
    later_pad = 5
    return pieces * (3 + 32) + first_pad + (pieces - 1) * later_pad + 8 * raw_length


def emit_empty_fixed_block(writer: BitWriter) -> None:
    """A fixed block holding only end-of-block: what Z_PARTIAL_FLUSH sends (10 bits)."""
    writer.write(block_header(False, 1) + FIXED_LITLEN_CODES[END_OF_BLOCK])


def symbol_frequencies(tokens: list[int]) -> tuple[Counter[int], list[int], list[int], int]:
    """Token counts, lit/len and distance symbol frequencies, and the total extra bits."""
    counts = Counter(tokens)
    litlen = [0] * MAXLCODES
    distance = [0] * MAXDCODES
    extra_bits = 0
    for token, count in counts.items():
        if token < 256:
            litlen[token] += count
        else:
            length, dist = token >> 16, token & 0xFFFF
            litlen[LENGTH_SYMBOL[length]] += count
            distance[DISTANCE_SYMBOL[dist]] += count
            extra_bits += count * (LENGTH_EXTRA_COUNT[length] + DISTANCE_EXTRA_COUNT[dist])
    litlen[END_OF_BLOCK] = 1
    return counts, litlen, distance, extra_bits


def coded_cost(freqs: list[int], lengths: list[int] | tuple[int, ...]) -> int:
    return sum(f * n for f, n in zip(freqs, lengths, strict=False))


def encode_tokens(tokens: list[int], counts: Counter[int], litlen_codes: list[str], distance_codes: list[str]) -> str:
    """The block body: every token's code (and extra bits) in order, then end-of-block."""
    table: dict[int, str] = {}
    for token in counts:
        if token < 256:
            table[token] = litlen_codes[token]
        else:
            length, dist = token >> 16, token & 0xFFFF
            table[token] = (
                litlen_codes[LENGTH_SYMBOL[length]]
                + LENGTH_EXTRA_STREAM[length]
                + distance_codes[DISTANCE_SYMBOL[dist]]
                + DISTANCE_EXTRA_STREAM[dist]
            )
    return "".join(map(table.__getitem__, tokens)) + litlen_codes[END_OF_BLOCK]


def emit_block(writer: BitWriter, tokens: list[int], raw: bytes, final: bool, *, fixed_only: bool = False) -> None:
    """Write ``tokens`` (which spell ``raw``) as the smallest stored, fixed or dynamic block.

    Like zlib's _tr_flush_block, ties go to stored, then fixed. ``fixed_only`` is
    Z_FIXED: never a dynamic block (stored is still allowed, as in zlib).
    """
    counts, litlen_freqs, distance_freqs, extra_bits = symbol_frequencies(tokens)
    fixed_bits = (
        3 + coded_cost(litlen_freqs, FIXED_LITLEN_LENGTHS) + coded_cost(distance_freqs, FIXED_DIST_LENGTHS) + extra_bits
    )
    dynamic_bits = None
    if not fixed_only:
        litlen_lengths = complete_code_lengths(litlen_freqs, MAXBITS)
        distance_lengths = complete_code_lengths(distance_freqs, MAXBITS)
        header = dynamic_header(litlen_lengths, distance_lengths)
        dynamic_bits = (
            3
            + len(header)
            + coded_cost(litlen_freqs, litlen_lengths)
            + coded_cost(distance_freqs, distance_lengths)
            + extra_bits
        )
    stored_bits = stored_cost(len(raw), len(writer.pending))
    if stored_bits <= fixed_bits and (dynamic_bits is None or stored_bits <= dynamic_bits):
        emit_stored_block(writer, raw, final)
    elif dynamic_bits is None or fixed_bits <= dynamic_bits:
        body = encode_tokens(tokens, counts, FIXED_LITLEN_CODES, FIXED_DISTANCE_CODES)
        writer.write(block_header(final, 1) + body)
    else:
        litlen_codes = canonical_codes(litlen_lengths)
        distance_codes = canonical_codes(distance_lengths)
        body = encode_tokens(tokens, counts, litlen_codes, distance_codes)
        writer.write(block_header(final, 2) + header + body)
