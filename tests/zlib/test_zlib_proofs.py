"""Proofs, for all inputs, of the fixed-width kernels (z3), and exhaustive checks.

Where possible the solver runs the production function itself on symbolic
values (the kernels use only ``^ & >> + %`` and indexing, which z3 expressions
support), over the very tables the module built -- not a re-typed copy.
docs/zlib-verification.md says which claim each test establishes and what
remains unproven.
"""

from __future__ import annotations

import inspect
import itertools
import random
from collections.abc import Sequence

import pytest
import z3

from spore.zlib import checksum, inflate, spec
from spore.zlib.checksum import ADLER_BASE, CRC_POLY, CRC_TABLES, NMAX

# --- CRC-32 ----------------------------------------------------------------------


def crc_definition(register: z3.BitVecRef, byte: z3.BitVecRef) -> z3.BitVecRef:
    """RFC 1952 §8 / ISO 3309, one byte: xor it in, then eight shift-and-reduce steps."""
    r = register ^ z3.ZeroExt(24, byte)
    for _ in range(8):
        r = z3.If(r & 1 == 1, z3.LShR(r, 1) ^ CRC_POLY, z3.LShR(r, 1))
    return r


class SymbolicTable:
    """A table the code built, as a z3 array; records that every index is in range."""

    def __init__(self, values: Sequence[int], obligations: list[z3.BoolRef]) -> None:
        array = z3.K(z3.BitVecSort(8), z3.BitVecVal(0, 32))
        for index, value in enumerate(values):
            array = z3.Store(array, index, value)
        self.array = array
        self.obligations = obligations

    def __getitem__(self, index: z3.BitVecRef) -> z3.BitVecRef:
        self.obligations.append(z3.ULT(index, 256))
        return z3.ZeroExt(32, z3.Select(self.array, z3.Extract(7, 0, index)))


def prove(claim: z3.BoolRef, timeout_ms: int = 120_000) -> None:
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(z3.Not(claim))
    result = solver.check()
    assert result == z3.unsat, f"not proven ({result}): {solver.model() if result == z3.sat else ''}"


def test_crc_table_step_equals_bitwise_definition() -> None:
    """For every 32-bit register and byte: crc32_bytewise over CRC_TABLES[0] is the definition.

    Registers are 64-bit vectors whose top half must stay zero, which also makes
    Python's ``>>`` (arithmetic on z3 vectors) the logical shift the code means.
    """
    obligations: list[z3.BoolRef] = []
    register, byte = z3.BitVec("register", 32), z3.BitVec("byte", 8)
    result = checksum.crc32_bytewise(
        z3.ZeroExt(32, register), [z3.ZeroExt(56, byte)], SymbolicTable(CRC_TABLES[0], obligations)
    )
    prove(
        z3.And(
            z3.Extract(63, 32, result) == 0,
            z3.Extract(31, 0, result) == crc_definition(register, byte),
            *obligations,
        )
    )


def _crc_bytes(register: int, data: Sequence[int]) -> int:
    """The byte-at-a-time kernel (proven above) applied to a concrete sequence."""
    return checksum.crc32_bytewise(register, data, CRC_TABLES[0])


def test_slicing_tables_are_zero_byte_extensions() -> None:
    """Exhaustive: CRC_TABLES[k][n] is the register after byte n then k zero bytes."""
    for k, table in enumerate(CRC_TABLES):
        for n in range(256):
            assert table[n] == _crc_bytes(0, [n] + [0] * k), (k, n)


def test_slicing_tables_are_linear() -> None:
    """Exhaustive: every table is GF(2)-linear, T[a ^ b] == T[a] ^ T[b] for all a, b."""
    for table in CRC_TABLES:
        for a in range(256):
            row = table[a]
            assert all(table[a ^ b] == row ^ table[b] for b in range(256))


def test_slicing_by_16_equals_sixteen_byte_steps_on_a_basis() -> None:
    """crc32_fold16 agrees with 16 proven byte steps on all 160 basis vectors (and zero).

    Both sides are GF(2)-linear in (register, block): the byte step is (it is
    the proven definition: shifts and conditional xors of a constant), and
    crc32_fold16 xors table lookups whose indices are xors/masks/shifts of the
    inputs, the tables being linear (previous test). Linear maps that agree on a
    basis agree everywhere, so this covers all 2**160 inputs. (z3 times out on
    the direct 160-bit xor equivalence, hence this route.)
    """
    basis = [(1 << bit, [0] * 16) for bit in range(32)]
    for position in range(16):
        for bit in range(8):
            block = [0] * 16
            block[position] = 1 << bit
            basis.append((0, block))
    basis.append((0, [0] * 16))
    for register, block in basis:
        folded = checksum.crc32_fold16(register, [tuple(block)], CRC_TABLES)
        assert folded == _crc_bytes(register, block), (register, block)


def test_crc32_update_splits_into_fold_and_tail() -> None:
    """Every length mod 16 and several alignments: the driver equals the byte kernel."""
    rng = random.Random(1)
    for length in range(0, 70):
        data = rng.randbytes(length)
        register = rng.getrandbits(32)
        assert checksum.crc32_update(register, data) == _crc_bytes(register, data)


# --- Adler-32 --------------------------------------------------------------------


def _adler_per_step(a: z3.ArithRef, b: z3.ArithRef, data: Sequence[z3.ArithRef]) -> tuple:
    """RFC 1950 §9's definition: both sums reduced modulo 65521 after every byte."""
    for byte in data:
        a = (a + byte) % ADLER_BASE
        b = (b + a) % ADLER_BASE
    return a, b


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 16, 32])
def test_adler_deferred_modulo_equals_per_step_modulo(length: int) -> None:
    """For all reduced (a, b) and all byte strings of this length: the real adler32_block."""
    a, b = z3.Ints("a b")
    data = [z3.Int(f"d{k}") for k in range(length)]
    ranges = [z3.And(a >= 0, a < ADLER_BASE), z3.And(b >= 0, b < ADLER_BASE)]
    ranges += [z3.And(d >= 0, d <= 255) for d in data]
    deferred = checksum.adler32_block(a, b, data)
    stepped = _adler_per_step(a, b, data)
    prove(z3.Implies(z3.And(*ranges), z3.And(deferred[0] == stepped[0], deferred[1] == stepped[1])))


def test_adler_deferred_modulo_induction_step() -> None:
    """For any length: if unreduced sums are congruent to the reduced ones, one more byte keeps it.

    With the base case (empty block: equal), this is the induction that makes
    "reduce once at the end" exact for every block length, whatever the kernel's size.
    """
    big_a, big_b, a, b, d = z3.Ints("A B a b d")
    hypothesis = z3.And(
        big_a >= 0,
        big_b >= 0,
        a >= 0,
        a < ADLER_BASE,
        b >= 0,
        b < ADLER_BASE,
        d >= 0,
        d <= 255,
        big_a % ADLER_BASE == a,
        big_b % ADLER_BASE == b,
    )
    next_a = (a + d) % ADLER_BASE
    next_b = (b + next_a) % ADLER_BASE
    prove(
        z3.Implies(
            hypothesis,
            z3.And(
                (big_a + d) % ADLER_BASE == next_a,
                (big_b + big_a + d) % ADLER_BASE == next_b,
            ),
        )
    )


def test_adler_block_bound_nmax() -> None:
    """Within a block of up to NMAX bytes no unreduced sum reaches 2**32, and NMAX is the largest.

    The unreduced b after n bytes is b0 + n*a0 + (sum of the n prefix sums),
    each prefix sum at most 255*k: bounded by (n+1)*65520 + 255*n*(n+1)/2.
    """
    n, a0, b0, prefix = z3.Ints("n a0 b0 prefix")
    claim = z3.Implies(
        z3.And(
            n >= 1,
            n <= NMAX,
            a0 >= 0,
            a0 < ADLER_BASE,
            b0 >= 0,
            b0 < ADLER_BASE,
            prefix >= 0,
            2 * prefix <= 255 * n * (n + 1),
        ),
        z3.And(b0 + n * a0 + prefix < 2**32, a0 + 255 * n < 2**32),
    )
    prove(claim)
    worst = 255 * (NMAX + 1) * (NMAX + 2) // 2 + (NMAX + 2) * (ADLER_BASE - 1)
    assert worst >= 2**32, "a block of NMAX + 1 bytes could overflow: NMAX is the largest"


# --- the bit reader ------------------------------------------------------------

STREAM_BYTES = 12
WIDTH = 8 * STREAM_BYTES + 64


def _symbolic_inflater() -> tuple[inflate.Inflater, z3.BitVecRef]:
    stream = z3.BitVec("stream", 8 * STREAM_BYTES)
    engine = inflate.Inflater("raw", 15)
    engine.buf = [z3.ZeroExt(WIDTH - 8, z3.Extract(8 * k + 7, 8 * k, stream)) for k in range(STREAM_BYTES)]
    engine.hold = z3.BitVecVal(0, WIDTH)
    return engine, z3.ZeroExt(64, stream)


def _invariant(engine: inflate.Inflater, stream: z3.BitVecRef, position: int) -> z3.BoolRef:
    """Held bits are exactly the stream's next nbits, and bytes pulled = position + held."""
    assert 8 * engine.i == position + engine.nbits
    mask = (1 << engine.nbits) - 1
    return z3.And(engine.hold == (z3.LShR(stream, position) & mask), z3.LShR(engine.hold, engine.nbits) == 0)


SCHEDULES = [list(s) for s in itertools.product([1, 3, 7, 8, 13, 16], repeat=3)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(map(str, s)))
def test_careful_bit_reader_reads_the_stream_in_order(schedule: list[int]) -> None:
    """For every stream: Inflater._need/_take return consecutive stream bits, invariant kept.

    The production methods run on a symbolic stream; the counts are concrete
    (every schedule of three reads from the widths DEFLATE uses), the data is not.
    After the reads, _give_back_whole_bytes leaves fewer than 8 bits held with the
    invariant intact -- what makes unconsumed_tail byte-exact.
    """
    engine, stream = _symbolic_inflater()
    position = 0
    claims = []
    for count in schedule:
        value = engine._bits(count)
        claims.append(value == (z3.LShR(stream, position) & ((1 << count) - 1)))
        position += count
        claims.append(_invariant(engine, stream, position))
    engine._give_back_whole_bytes()
    assert engine.nbits < 8
    claims.append(_invariant(engine, stream, position))
    prove(z3.And(*claims))


def test_fast_refill_preserves_the_invariant() -> None:
    """For all streams and held counts below 32: a refill keeps "held = the stream's next bits".

    A transcription of _fast_codes' refill (``hold |= words[j] << nbits; j += 1;
    nbits += 64``), proven for each word index with the stream and nbits symbolic;
    the transcription is pinned to the source text by a test below.
    """
    words = 3
    width = 64 * words + 64
    stream = z3.ZeroExt(64, z3.BitVec("stream", 64 * words))
    nbits = z3.BitVec("nbits", width)

    def mask(count: z3.BitVecRef) -> z3.BitVecRef:
        return (z3.BitVecVal(1, width) << count) - 1

    for j in range(words):
        position = 64 * j - nbits
        hold = z3.LShR(stream, position) & mask(nbits)
        word = z3.LShR(stream, 64 * j) & (2**64 - 1)
        prove(
            z3.Implies(
                z3.And(z3.ULE(nbits, 31), z3.ULE(nbits, 64 * j)),
                (hold | (word << nbits)) == (z3.LShR(stream, position) & mask(nbits + 64)),
            )
        )


def test_consuming_bits_preserves_the_invariant() -> None:
    """For all streams, positions, held counts n and drops k <= n: ``hold >>= k`` keeps it.

    (S >> p) & (2**n - 1), shifted right by k, is (S >> (p + k)) & (2**(n - k) - 1).
    Proven with every quantity symbolic on 32-bit vectors; the identity is
    bit-local (bit i of either side is S[p + k + i] when i < n - k, else 0), so it
    does not depend on the width, while z3 needs minutes at the code's widths.
    """
    width = 32
    stream, position, n, k = z3.BitVecs("stream position n k", width)

    def mask(count: z3.BitVecRef) -> z3.BitVecRef:
        return (z3.BitVecVal(1, width) << count) - 1

    hold = z3.LShR(stream, position) & mask(n)
    prove(
        z3.Implies(
            z3.And(z3.ULE(k, n), z3.ULE(n, width), z3.ULE(position, width)),
            z3.LShR(hold, k) == (z3.LShR(stream, position + k) & mask(n - k)),
        )
    )


def test_fast_refill_transcription_matches_source() -> None:
    source = inspect.getsource(inflate._fast_codes)
    for statement in ("hold |= words[j] << nbits", "j += 1", "nbits += 64", "hold >>= bits", "nbits -= bits"):
        assert statement in source


# --- canonical Huffman decoding ----------------------------------------------------


def _all_length_vectors() -> list[tuple[int, ...]]:
    vectors: list[tuple[int, ...]] = []
    for size in (1, 2, 3, 4):
        vectors += itertools.product(range(5), repeat=size)
    vectors += itertools.product(range(4), repeat=5)
    return vectors


def test_acceptability_rule_matches_reference_exhaustively() -> None:
    for lengths in _all_length_vectors():
        h = spec.construct(lengths)
        for is_code_length_code in (False, True):
            assert inflate.lengths_acceptable(lengths, is_code_length_code) == spec.code_is_acceptable(
                h, is_code_length_code=is_code_length_code
            ), lengths


def _spec_decode(h: spec.Huffman, pattern: int, width: int) -> tuple[int, int]:
    reader = spec.BitReader(pattern.to_bytes(4, "little"))
    symbol = spec.decode(reader, h)
    return symbol, reader.pos


def _sample_complete_codes() -> list[list[int]]:
    """Complete codes over 2..286 symbols with lengths up to 7..12 (random, seeded), and the fixed codes."""
    rng = random.Random(3)
    codes = []
    for size, limit in [(2, 7), (3, 7), (7, 7), (19, 7), (19, 7), (30, 12), (286, 12), (286, 12)]:
        weights = [rng.expovariate(1.0) ** 4 for _ in range(size)]  # skewed, so codes get long
        codes.append(_huffman_lengths(weights, limit))
    return [*codes, list(spec.FIXED_LITLEN_LENGTHS), list(spec.FIXED_DIST_LENGTHS)]


def test_table_lookup_equals_bit_by_bit_decoding_exhaustively() -> None:
    """Acceptable codes, every bit pattern: the table gives the reference's (symbol, length).

    All codes over up to 4 symbols with lengths 0..4 and 5 symbols with lengths
    0..3 (including incomplete and empty ones, whose gaps must read as invalid
    after one bit), then larger complete codes; each over all 2**width patterns.
    """
    checked = 0
    candidates = [list(v) for v in _all_length_vectors()] + _sample_complete_codes()
    for lengths in candidates:
        if not inflate.lengths_acceptable(lengths, False):
            continue
        table, width = inflate.build_full_table(lengths, -1)
        h = spec.construct(lengths)
        for pattern in range(1 << width):
            entry = table[pattern]
            assert (entry >> 4, entry & 15) == _spec_decode(h, pattern, width), (lengths, pattern)
            checked += 1
    assert checked > 10_000


def _litlen_lengths_from_streams() -> list[list[int]]:
    rng = random.Random(5)
    codes = [list(spec.FIXED_LITLEN_LENGTHS)]
    for _ in range(6):
        weights = [rng.expovariate(1.0) for _ in range(286)]
        codes.append(_huffman_lengths(weights, 15))
    return codes


def _huffman_lengths(weights: list[float], limit: int) -> list[int]:
    """Lengths of a complete code: Huffman, with long codes clamped and repaired (test data only)."""
    import heapq

    heap = [(w, [i]) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    lengths = [0] * len(weights)
    while len(heap) > 1:
        w1, s1 = heapq.heappop(heap)
        w2, s2 = heapq.heappop(heap)
        for symbol in s1 + s2:
            lengths[symbol] += 1
        heapq.heappush(heap, (w1 + w2, s1 + s2))
    lengths = [min(n, limit) for n in lengths]

    def kraft() -> int:  # sum of 2**-length, in units of 2**-limit
        return sum(1 << (limit - n) for n in lengths)

    while kraft() > 1 << limit:  # over-subscribed after clamping: lengthen a short code
        shortest = min((s for s in range(len(lengths)) if lengths[s] < limit), key=lambda s: lengths[s])
        lengths[shortest] += 1
    for symbol in sorted(range(len(lengths)), key=lambda s: -lengths[s]):
        while lengths[symbol] > 1 and kraft() + (1 << (limit - lengths[symbol])) <= 1 << limit:
            lengths[symbol] -= 1  # slack left: shorten the longest codes until complete
    assert kraft() == 1 << limit
    return lengths


@pytest.mark.parametrize("lengths", _litlen_lengths_from_streams(), ids=lambda _: "code")
def test_fast_table_entries_decode_like_the_reference(lengths: list[int]) -> None:
    """Every fast-table entry (literal runs, lengths with extra bits, end of block) is right.

    For each index, the entry's claim -- these literals, or this length base and
    extra-bit layout, or end-of-block, using these many bits -- is replayed with
    the reference's bit-by-bit decoder.
    """
    _, width, fast, fast_bits = inflate.build_litlen_tables(lengths)
    h = spec.construct(lengths)
    for index, (kind, bits, value, extra_mask, total) in enumerate(fast):
        reader = spec.BitReader(index.to_bytes(4, "little"))
        if kind == 3:
            symbol = spec.decode(reader, h)
            assert reader.pos > fast_bits or symbol > 285 or symbol < 0
            continue
        if kind == 0:
            decoded = bytes(spec.decode(reader, h) for _ in value)
            assert decoded == value and reader.pos == bits
            continue
        symbol = spec.decode(reader, h)
        assert reader.pos == bits
        if kind == 2:
            assert symbol == 256
        else:
            extra = spec.LENGTH_EXTRA[symbol - 257]
            assert value == spec.LENGTH_BASE[symbol - 257]
            assert (extra_mask, total) == ((1 << extra) - 1, bits + extra)
    assert width >= fast_bits


# --- staged dynamic codes (issue 13) ----------------------------------------------


def _staged_candidates() -> list[list[int]]:
    """Acceptable codes: the exhaustive small domain (as distance codes) and literal/length codes."""
    small = [list(v) for v in _all_length_vectors()] + _sample_complete_codes()
    return [lengths for lengths in small + _litlen_lengths_from_streams() if inflate.lengths_acceptable(lengths, False)]


def test_staged_code_tables_equal_the_eager_ones() -> None:
    """dynamic_code's fast table, once upgraded, is build_litlen_tables' (or build_distance_tables'), full table too.

    Before the upgrade the literal/length fast table is the same without literal runs.
    """
    for lengths in _staged_candidates():
        key = bytes(lengths)
        count = [lengths.count(n) for n in range(16)]
        inflate._CODE_CACHE.clear()
        staged = inflate.dynamic_code(key, count)
        assert staged.symbols == list(spec.construct(lengths).symbol), lengths
        upgraded = inflate.upgraded(key, staged)
        if len(lengths) > 30:
            full, width, fast, fast_bits = inflate.build_litlen_tables(lengths)
            assert inflate.with_literal_runs(staged.fast, staged.fast_bits) == fast
        else:
            full, width, fast, fast_bits = inflate.build_distance_tables(lengths)
            assert staged.fast == fast
        assert (upgraded.full, upgraded.width, upgraded.fast, upgraded.fast_bits) == (full, width, fast, fast_bits)


def test_canonical_decode_pulls_and_answers_like_the_table() -> None:
    """_decode_canonical equals _decode over build_full_table: symbol, length, bytes pulled, or NeedInput.

    For every acceptable code of the small exhaustive domain and the larger
    sampled ones, every bit pattern of the code's width up to 12 bits (2048
    random ones for the 15-bit literal/length codes), padded with ones and with
    zeros; every count of held bits 0..width (0, 3 and 8 for codes wider than 8
    bits); input cut after 0, 1 and all bytes.
    """
    rng = random.Random(13)
    checked = 0
    for lengths in _staged_candidates():
        code = inflate.dynamic_code(bytes(lengths), [lengths.count(n) for n in range(16)])
        table, width = inflate.build_full_table(lengths, -1)
        helds = range(width + 1) if width <= 8 else (0, 3, 8)
        patterns = range(1 << width) if width <= 12 else rng.sample(range(1 << width), 2048)
        for pattern in patterns:
            for padding in (0, -1):
                stream = (pattern | (padding << width)) & 0xFFFFFFFF
                for held in helds:
                    rest = (stream >> held).to_bytes(4, "little")
                    for cut in (0, 1, 4):
                        outcomes = []
                        for decode in ("table", "canonical"):
                            engine = inflate.Inflater("raw", 15)
                            engine.hold, engine.nbits, engine.buf = stream & ((1 << held) - 1), held, rest[:cut]
                            try:
                                if decode == "table":
                                    answer = engine._decode(table, width)
                                else:
                                    answer = engine._decode_canonical(code)
                            except inflate._NeedInput:
                                answer = None
                            outcomes.append((answer, engine.i, engine.nbits, engine.hold))
                        assert outcomes[0] == outcomes[1], (lengths, pattern, held, cut)
                        checked += 1
    assert checked > 50_000
