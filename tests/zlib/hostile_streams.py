"""Raw DEFLATE streams built to make a decoder work hard per input byte.

Each generator returns a raw (wbits=-15) stream of about ``size`` bytes that
decodes without error; ``HOSTILE`` names them. They are the adversaries of
issue 13's "bounded cost" finding, shared by tests/zlib/test_zlib_cost.py and
benchmarks/zlib_bench.py --hostile:

* tiny_dynamic_blocks: non-final dynamic blocks that each declare a code with
  15-bit codes and hold only end-of-block (the audit's 46 s/MB stream);
* distinct_dynamic_blocks: the same, but every block's code is a different
  one, so that no cache of tables can help;
* deep_code_literals: one dynamic block whose literals all have 14- and
  15-bit codes, so every symbol is longer than any one-lookup table;
* fixed_block_bomb: C zlib's Z_FIXED stream of zeros (258-byte matches at
  distance 1 in 13 bits, about 160:1);
* dynamic_bomb: 1-bit length and distance codes, so each 2 bits write 258
  bytes (about 1030:1, the densest DEFLATE allows);
* empty_fixed_blocks: Z_PARTIAL_FLUSH markers (10-bit fixed blocks holding
  only end-of-block), back to back;
* empty_stored_blocks: 5-byte stored blocks of length 0;
* long_stored_runs: 65535-byte stored blocks.
"""

from __future__ import annotations

import random
import zlib as c_zlib
from collections.abc import Callable

from spore.zlib.huffman_encode import (
    BitWriter,
    block_header,
    canonical_codes,
    dynamic_header,
    emit_empty_fixed_block,
)
from spore.zlib.spec import END_OF_BLOCK


def _finish(writer: BitWriter) -> bytes:
    """A final empty fixed block, then the bytes."""
    writer.write(block_header(True, 1) + "0000000")  # end-of-block is 7 zero bits in the fixed code
    writer.align_to_byte()
    return writer.take_output()


def _deep_litlen_lengths(symbols: list[int]) -> list[int]:
    """Lengths 1, 2, ..., 14, 15, 15 for ``symbols`` (a complete code 15 bits deep)."""
    lengths = [0] * 286
    for depth, symbol in enumerate(symbols[:15], start=1):
        lengths[symbol] = depth
    lengths[symbols[15]] = 15
    return lengths


def tiny_dynamic_blocks(size: int, seed: int = 0) -> bytes:
    """Non-final dynamic blocks, one and the same 15-bit-deep code, each holding only end-of-block."""
    symbols = [*range(15), END_OF_BLOCK]  # end-of-block gets one of the two 15-bit codes
    return _dynamic_blocks(size, lambda: symbols)


def distinct_dynamic_blocks(size: int, seed: int = 0) -> bytes:
    """Like tiny_dynamic_blocks, but each block's code is drawn afresh (a cache cannot help)."""
    rng = random.Random(seed)

    def draw() -> list[int]:
        others = rng.sample([s for s in range(286) if s != END_OF_BLOCK], 15)
        position = rng.randrange(16)
        return others[:position] + [END_OF_BLOCK] + others[position:]

    return _dynamic_blocks(size, draw)


def _dynamic_blocks(size: int, draw_symbols: Callable[[], list[int]]) -> bytes:
    writer = BitWriter()
    written = 0
    while written < size:
        lengths = _deep_litlen_lengths(draw_symbols())
        codes = canonical_codes(lengths)
        bits = block_header(False, 2) + dynamic_header(lengths, [0]) + codes[END_OF_BLOCK]
        writer.write(bits)
        written += len(bits) / 8
    return _finish(writer)


def deep_code_literals(size: int, seed: int = 0) -> bytes:
    """One dynamic block of literals that all have 14- or 15-bit codes (the careful path's worst)."""
    rng = random.Random(seed)
    # 1, 2, ..., 13 for 13 symbols leaves 2**-13 of the code space: one code of
    # 14 bits and two of 15 fill it. The literals drawn are the 14/15-bit ones.
    lengths = [0] * 286
    for depth, symbol in enumerate(range(100, 113), start=1):
        lengths[symbol] = depth
    deep = [0, 1]
    lengths[0] = 14
    lengths[1] = lengths[END_OF_BLOCK] = 15
    codes = canonical_codes(lengths)
    body = "".join(codes[rng.choice(deep)] for _ in range(int(size * 8 / 14.5)))
    writer = BitWriter()
    writer.write(block_header(False, 2) + dynamic_header(lengths, [0]) + body + codes[END_OF_BLOCK])
    return _finish(writer)


def fixed_block_bomb(size: int, seed: int = 0) -> bytes:
    """C zlib's fixed-code stream of zeros: 258-byte matches at distance 1."""
    co = c_zlib.compressobj(9, c_zlib.DEFLATED, -15, 9, c_zlib.Z_FIXED)
    zeros = b"\0" * (1 << 20)
    out = []
    written = 0
    while written < size:
        piece = co.compress(zeros)
        out.append(piece)
        written += len(piece)
    out.append(co.flush())
    return b"".join(out)


def dynamic_bomb(size: int, seed: int = 0) -> bytes:
    """Length 258 and distance 1, each with a 1-bit code: 258 bytes of output per 2 bits."""
    lengths = [0] * 286
    lengths[0] = 2  # a literal to start from
    lengths[END_OF_BLOCK] = 2
    lengths[285] = 1  # length 258
    litlen = canonical_codes(lengths)
    body = litlen[0] + (litlen[285] + "0") * (size * 4)  # the one 1-bit distance code is "0"
    writer = BitWriter()
    writer.write(block_header(False, 2) + dynamic_header(lengths, [1]) + body + litlen[END_OF_BLOCK])
    return _finish(writer)


def empty_fixed_blocks(size: int, seed: int = 0) -> bytes:
    writer = BitWriter()
    for _ in range(size * 8 // 10):
        emit_empty_fixed_block(writer)
    return _finish(writer)


def empty_stored_blocks(size: int, seed: int = 0) -> bytes:
    return b"\x00\x00\x00\xff\xff" * (size // 5) + b"\x03\x00"


def long_stored_runs(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    writer = BitWriter()
    for _ in range(max(1, size // 65540)):
        writer.write(block_header(False, 0))
        writer.align_to_byte()
        writer.write_bytes(b"\xff\xff\x00\x00" + rng.randbytes(65535))
    return _finish(writer)


HOSTILE: dict[str, Callable[..., bytes]] = {
    "tiny dynamic blocks": tiny_dynamic_blocks,
    "distinct dynamic blocks": distinct_dynamic_blocks,
    "deep code literals": deep_code_literals,
    "fixed-block bomb": fixed_block_bomb,
    "dynamic bomb": dynamic_bomb,
    "empty fixed blocks": empty_fixed_blocks,
    "empty stored blocks": empty_stored_blocks,
    "long stored runs": long_stored_runs,
}
