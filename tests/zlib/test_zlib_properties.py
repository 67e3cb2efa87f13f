"""Hypothesis properties of the streaming decompressor, against C zlib's streams.

Whatever way a caller slices the input and limits the output, spore.zlib's
decompressobj gives back exactly what C zlib compressed; and a stateful model
drives spore.zlib and C zlib with the same random calls, comparing everything
observable after each one.
"""

from __future__ import annotations

import zlib as c_zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from zlib_harness import read_in_limited_pieces

import spore.zlib as sz

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

payloads = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=20), st.integers(1, 400)),
    st.text(alphabet="ab \n", max_size=5000).map(str.encode),
)
framings = st.sampled_from([15, -15, 31, 9, -9, 25])
levels = st.integers(-1, 9)
strategies = st.sampled_from([0, 1, 2, 3, 4])


def _read_wbits(wbits: int) -> int:
    return 47 if wbits == 31 else wbits  # gzip also read through automatic detection


@st.composite
def c_zlib_streams(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    data = draw(payloads)
    wbits = draw(framings)
    co = c_zlib.compressobj(draw(levels), c_zlib.DEFLATED, wbits, draw(st.integers(1, 9)), draw(strategies))
    pieces, i = [], 0
    for size in draw(st.lists(st.integers(1, 2000), max_size=5)):
        pieces.append(co.compress(data[i : i + size]))
        pieces.append(co.flush(draw(st.sampled_from([c_zlib.Z_NO_FLUSH, c_zlib.Z_SYNC_FLUSH, c_zlib.Z_FULL_FLUSH]))))
        i += size
    pieces.append(co.compress(data[i:]) + co.flush())
    return data, b"".join(pieces), wbits


def _chunks(stream: bytes, sizes: list[int]) -> list[bytes]:
    pieces, i = [], 0
    for size in sizes:
        pieces.append(stream[i : i + size])
        i += size
    pieces.append(stream[i:])
    return pieces


@SETTINGS
@given(c_zlib_streams(), st.lists(st.integers(0, 300), max_size=20), st.binary(max_size=8))
def test_any_chunking_yields_the_original_and_the_trailing_bytes(
    case: tuple[bytes, bytes, int], sizes: list[int], trailing: bytes
) -> None:
    data, stream, wbits = case
    d = sz.decompressobj(_read_wbits(wbits))
    output = b"".join(d.decompress(piece) for piece in _chunks(stream + trailing, sizes))
    assert output == data
    assert d.eof
    assert d.unused_data == trailing
    assert d.unconsumed_tail == b""


@SETTINGS
@given(c_zlib_streams(), st.integers(1, 700))
def test_max_length_loop_never_exceeds_the_limit_and_loses_nothing(
    case: tuple[bytes, bytes, int], max_length: int
) -> None:
    data, stream, wbits = case
    d = sz.decompressobj(_read_wbits(wbits))
    output = read_in_limited_pieces(d, stream, max_length, calls=len(data) + len(stream) + 10)  # each makes progress
    assert d.eof
    assert output == data


@SETTINGS
@given(c_zlib_streams(), st.integers(0, 500), st.integers(1, 300))
def test_flush_finishes_what_a_limited_decompress_left(
    case: tuple[bytes, bytes, int], cut: int, max_length: int
) -> None:
    data, stream, wbits = case
    d = sz.decompressobj(_read_wbits(wbits))
    head = d.decompress(stream[:cut], max_length)
    head += d.decompress(d.unconsumed_tail + stream[cut:], max_length)
    assert head + d.flush() == data
    assert d.eof


@settings(max_examples=25, deadline=None)
@given(payloads.map(lambda b: b[:1500]), st.integers(0, 9), framings)
def test_spore_round_trip(data: bytes, level: int, wbits: int) -> None:
    """decompress(compress(x)) == x with both halves from spore.zlib."""
    assert sz.decompress(sz.compress(data, level, wbits), wbits) == data


class DecompressorModel(RuleBasedStateMachine):
    """spore.zlib and C zlib decompressors fed the same calls must stay indistinguishable."""

    @initialize(case=c_zlib_streams(), junk=st.binary(max_size=6), damage=st.integers(-1, 400))
    def start(self, case: tuple[bytes, bytes, int], junk: bytes, damage: int) -> None:
        _, stream, wbits = case
        stream = bytearray(stream + junk)
        if 0 <= damage < len(stream):
            stream[damage] ^= 0x10  # sometimes a damaged stream
        self.stream = bytes(stream)
        self.position = 0
        self.ours = sz.decompressobj(_read_wbits(wbits))
        self.theirs = c_zlib.decompressobj(_read_wbits(wbits))

    def _both(self, call: str, *args: object) -> None:
        results = []
        for d, module in ((self.ours, sz), (self.theirs, c_zlib)):
            try:
                results.append(("ok", getattr(d, call)(*args)))
            except module.error as exc:
                results.append(("error", str(exc)))
        assert results[0] == results[1]

    @rule(size=st.integers(0, 500), max_length=st.integers(0, 300), with_tail=st.booleans())
    def feed(self, size: int, max_length: int, with_tail: bool) -> None:
        chunk = self.stream[self.position : self.position + size]
        self.position += size
        if with_tail:
            chunk = self.ours.unconsumed_tail + chunk
        self._both("decompress", chunk, max_length)

    @rule()
    def flush(self) -> None:
        self._both("flush")

    @precondition(lambda self: not self.theirs.eof)
    @rule()
    def copy(self) -> None:
        self.ours, self.theirs = self.ours.copy(), self.theirs.copy()

    @invariant()
    def observables_agree(self) -> None:
        for name in ("eof", "unused_data", "unconsumed_tail"):
            assert getattr(self.ours, name) == getattr(self.theirs, name), name


DecompressorModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_decompressor_model = DecompressorModel.TestCase
