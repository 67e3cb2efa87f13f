"""The encoder's kernels against their definitions.

Each fast piece of the encoder is checked against the plain statement of what
it computes: package-merge against exhaustive search for the cheapest code,
canonical codes against RFC 1951 §3.2.2's own example, the rfind-free chain
search against zlib's byte-by-byte chain walk, the chain candidates against
zlib's head/prev arrays, the code-length RLE against its decoding.
"""

from __future__ import annotations

import itertools
import zlib as c_zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spore.zlib.huffman_encode import (
    BitWriter,
    bits_to_bytes,
    build_length_limited_code,
    canonical_codes,
    complete_code_lengths,
    emit_block,
    emit_stored_block,
    lsb_first,
    run_length_encode,
)
from spore.zlib.lz77 import MIN_LOOKAHEAD, Lz77, longest_match, match_token

# --- Huffman code construction ---------------------------------------------------


def kraft_sum(lengths: list[int]) -> float:
    return sum(2.0**-n for n in lengths if n)


def cost(freqs: list[int], lengths: list[int]) -> int:
    return sum(f * n for f, n in zip(freqs, lengths, strict=True))


def cheapest_cost_by_search(freqs: list[int], max_bits: int) -> int:
    """The definition: the cheapest complete prefix code over all length assignments."""
    used = [f for f in freqs if f]
    best = None
    for lengths in itertools.product(range(1, max_bits + 1), repeat=len(used)):
        if sum(2**-n for n in lengths) == 1:
            total = sum(f * n for f, n in zip(used, lengths, strict=True))
            best = total if best is None else min(best, total)
    assert best is not None
    return best


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=6), st.integers(3, 4))
def test_package_merge_is_as_cheap_as_exhaustive_search(freqs: list[int], max_bits: int) -> None:
    if sum(1 for f in freqs if f) < 2:
        return
    lengths = build_length_limited_code(freqs, max_bits)
    assert max(lengths) <= max_bits
    assert kraft_sum(lengths) == 1
    assert all((f == 0) == (n == 0) for f, n in zip(freqs, lengths, strict=True))
    assert cost(freqs, lengths) == cheapest_cost_by_search(freqs, max_bits)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=286), st.sampled_from([7, 15]))
def test_length_limited_codes_are_complete_and_limited(freqs: list[int], max_bits: int) -> None:
    if sum(1 for f in freqs if f) > 1 << max_bits:
        return
    lengths = complete_code_lengths(freqs, max_bits)
    assert max(lengths) <= max_bits
    assert kraft_sum(lengths) == 1  # zlib's inflate rejects incomplete codes


def test_fibonacci_frequencies_are_limited_to_15_bits() -> None:
    """Fibonacci weights give the deepest Huffman tree: 30 symbols would need 29 bits unlimited."""
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    lengths = build_length_limited_code(fib, 15)
    assert max(lengths) == 15 and kraft_sum(lengths) == 1


def test_one_used_symbol_still_gets_a_complete_code() -> None:
    lengths = complete_code_lengths([0, 0, 0, 5], 15)
    assert sorted(n for n in lengths if n) == [1, 1]


def test_canonical_codes_match_rfc1951_example() -> None:
    """RFC 1951 §3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A..H."""
    codes = canonical_codes([3, 3, 3, 3, 3, 2, 4, 4])
    assert codes == ["010", "011", "100", "101", "110", "00", "1110", "1111"]


def test_lsb_first_and_bytes_pack_from_the_least_significant_bit() -> None:
    assert lsb_first(0b110, 3) == "011"
    assert bits_to_bytes("10000000" + "01000000") == b"\x01\x02"


# --- code length run-length coding (§3.2.7) --------------------------------------


def run_length_decode(runs: list[tuple[int, int, int]]) -> list[int]:
    out: list[int] = []
    for symbol, value, nbits in runs:
        if symbol < 16:
            assert nbits == 0
            out.append(symbol)
        elif symbol == 16:
            assert nbits == 2 and out
            out += [out[-1]] * (3 + value)
        elif symbol == 17:
            assert nbits == 3
            out += [0] * (3 + value)
        else:
            assert symbol == 18 and nbits == 7
            out += [0] * (11 + value)
        assert 0 <= value < 1 << nbits if nbits else value == 0
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 0, 1, 5, 7, 8, 15]), max_size=320))
def test_code_length_runs_decode_back(lengths: list[int]) -> None:
    assert run_length_decode(run_length_encode(lengths)) == lengths


# --- blocks ------------------------------------------------------------------------


def tokens_of_literals(data: bytes) -> list[int]:
    return list(data)


@pytest.mark.parametrize(
    ("name", "data", "tokens", "btype"),
    [
        ("empty block is fixed (10 bits)", b"", [], 1),
        ("a few literals are fixed", b"abc", [97, 98, 99], 1),
        ("random bytes are stored", bytes(range(256)) * 2, None, 0),
        ("skewed text is dynamic", b"ab" * 300 + b"c" * 300, None, 2),
    ],
)
def test_emit_block_chooses_the_smallest_type(name: str, data: bytes, tokens: list[int] | None, btype: int) -> None:
    if tokens is None:
        import random

        rng = random.Random(1)
        if btype == 0:
            data = rng.randbytes(600)
        tokens = tokens_of_literals(data)
    writer = BitWriter()
    emit_block(writer, tokens, data, final=True)
    writer.align_to_byte()
    out = writer.take_output()
    assert (out[0] >> 1) & 3 == btype, name
    assert c_zlib.decompress(out, -15) == data


def test_matches_decode_through_c_zlib() -> None:
    # "abcabcabc..." as 'a' 'b' 'c' then one match of length 258 at distance 3, then 3 at 3.
    data = b"abc" * 88
    tokens = [97, 98, 99, match_token(258, 3), match_token(3, 3)]
    for fixed_only in (False, True):
        writer = BitWriter()
        emit_block(writer, tokens, data, final=True, fixed_only=fixed_only)
        writer.align_to_byte()
        assert c_zlib.decompress(writer.take_output(), -15) == data


def test_stored_blocks_split_at_65535_bytes() -> None:
    data = bytes(range(256)) * 600  # 153600 bytes: three stored blocks
    writer = BitWriter()
    emit_stored_block(writer, data, final=True)
    out = writer.take_output()
    assert len(out) == len(data) + 3 * 5
    assert c_zlib.decompress(out, -15) == data


# --- LZ77: the chain candidates and the search ---------------------------------------


def zlib_hash_chain_walk(data: bytes, pos: int, wbits: int, mem_level: int, max_chain: int) -> list[int]:
    """zlib's head/prev arrays, built position by position, walked as deflate_slow and longest_match do.

    As in zlib, 0 is both window index 0 and NIL ("no position").
    """
    nil = 0
    hash_bits = mem_level + 7
    shift = (hash_bits + 2) // 3
    mask = (1 << hash_bits) - 1
    max_dist = (1 << wbits) - MIN_LOOKAHEAD
    head: dict[int, int] = {}
    prev: dict[int, int] = {}
    for i in range(pos + 1):
        h = ((data[i] << 2 * shift) ^ (data[i + 1] << shift) ^ data[i + 2]) & mask
        prev[i] = head.get(h, nil)
        head[h] = i
    hash_head = prev[pos]
    if hash_head == nil or pos - hash_head > max_dist:
        return []
    limit = pos - max_dist if pos > max_dist else nil
    visited, candidate, chain_length = [], hash_head, max_chain
    while True:
        visited.append(candidate)
        candidate = prev[candidate]
        chain_length -= 1
        if candidate <= limit or chain_length == 0:
            return visited


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=3, max_size=1200).map(lambda b: bytes(x % 4 for x in b)),
    st.integers(0, 10_000),
    st.sampled_from([9, 10]),
    st.integers(1, 9),
    st.sampled_from([4, 8, 32, 128]),
)
def test_chain_candidates_are_zlibs_chain_walk(
    data: bytes, where: int, wbits: int, mem_level: int, max_chain: int
) -> None:
    pos = where % (len(data) - 2)
    lz = Lz77(6, 0, wbits, mem_level)
    lz.feed(data)
    assert lz.chain_candidates(pos, max_chain) == zlib_hash_chain_walk(data, pos, wbits, mem_level, max_chain)


def chain_walk_longest_match(
    data: bytes, pos: int, candidates: list[int], best_len: int, best_start: int, max_len: int, nice: int
) -> tuple[int, int]:
    """The definition: compare byte by byte, keep strictly longer, stop at nice."""
    for candidate in candidates:
        length = 0
        while length < max_len and data[candidate + length] == data[pos + length]:
            length += 1
        if length > best_len:
            best_len, best_start = length, candidate
            if length >= nice:
                break
    return best_len, best_start


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=4, max_size=700).map(lambda b: bytes(x % 3 for x in b)),
    st.data(),
)
def test_longest_match_is_the_chain_walk(data: bytes, draw: st.DataObject) -> None:
    pos = draw.draw(st.integers(1, len(data) - 1))
    candidates = sorted(set(draw.draw(st.lists(st.integers(0, pos - 1), max_size=20))), reverse=True)
    max_len = draw.draw(st.integers(1, min(258, len(data) - pos)))
    best_len = draw.draw(st.integers(2, 10))
    nice = draw.draw(st.integers(3, 258))
    base = draw.draw(st.integers(0, 10**6))
    got = longest_match(bytearray(data), base, pos, [c + base for c in candidates], best_len, -7, max_len, nice)
    assert got == chain_walk_longest_match(data, pos, candidates, best_len, -7, max_len, nice)
