"""Round trip: decompress(compress(x)) == x for every setting, chunking and flush sequence.

The property is checked with C zlib's decompressor (the independent judge) and
with spore.zlib's own. The stateful test drives one compressobj through random
compress / flush / copy calls and checks what zlib promises at each step:
the output so far always decodes to a prefix of the input; after
Z_SYNC_FLUSH or Z_FULL_FLUSH, to all of it; after
Z_FULL_FLUSH the rest decodes on its own, without the history; a copy()
carries on independently of its original.
"""

from __future__ import annotations

import zlib as c_zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from zlib_harness import decompress_whole, zdict_keyword

import spore.zlib as sz

# Inputs with structure, so matches of all lengths and distances occur, and raw bytes.
structured = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"abc", b"the ", b"\x00", b"xyzxyz", b"\xff\xfe"]).map(lambda b: b * 30),
    ),
    max_size=30,
).map(b"".join)
payloads = st.one_of(st.binary(max_size=2000), structured)

framings = st.sampled_from([9, 12, 15, -9, -15, 25, 31])
flush_modes = st.sampled_from([sz.Z_NO_FLUSH, sz.Z_PARTIAL_FLUSH, sz.Z_SYNC_FLUSH, sz.Z_FULL_FLUSH, sz.Z_BLOCK])


def both_decompress(stream: bytes, wbits: int, zdict: bytes | None) -> tuple[bytes, bytes]:
    return decompress_whole(c_zlib, stream, wbits, zdict), decompress_whole(sz, stream, wbits, zdict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=payloads,
    level=st.integers(-1, 9),
    wbits=framings,
    mem_level=st.integers(1, 9),
    strategy=st.integers(0, 4),
    zdict=st.one_of(st.none(), st.binary(min_size=1, max_size=300), structured.filter(bool)),
    cuts=st.lists(st.tuples(st.integers(0, 2000), flush_modes), max_size=6),
)
def test_any_stream_decompresses_to_its_input(
    data: bytes,
    level: int,
    wbits: int,
    mem_level: int,
    strategy: int,
    zdict: bytes | None,
    cuts: list[tuple[int, int]],
) -> None:
    if wbits > 15:
        zdict = None  # zlib allows no preset dictionary in a gzip stream
    co = sz.compressobj(level, sz.DEFLATED, wbits, mem_level, strategy, **zdict_keyword(zdict))
    out, start = [], 0
    for cut, mode in sorted(cuts):
        cut = min(cut, len(data))
        out.append(co.compress(data[start:cut]))
        out.append(co.flush(mode))
        start = cut
    out.append(co.compress(data[start:]))
    out.append(co.flush())
    c_out, our_out = both_decompress(b"".join(out), wbits, zdict)
    assert c_out == data
    assert our_out == data


@settings(max_examples=60, deadline=None)
@given(data=payloads, level=st.integers(0, 9), wbits=framings)
def test_one_shot_compress_round_trips(data: bytes, level: int, wbits: int) -> None:
    assert both_decompress(sz.compress(data, level, wbits), wbits, None) == (data, data)


class CompressorSession(RuleBasedStateMachine):
    """One compressobj under random calls, checked against zlib's promises after each."""

    @initialize(level=st.integers(0, 9), strategy=st.integers(0, 4), wbits=st.sampled_from([15, -15, 31, 10]))
    def start(self, level: int, strategy: int, wbits: int) -> None:
        self.wbits = wbits
        self.co = sz.compressobj(level, sz.DEFLATED, wbits, 8, strategy)
        self.stream = b""  # everything the compressor has returned
        self.fed = b""  # everything given to it
        # After a full flush: (bytes of input before it, stream offset where the rest begins)
        self.restart: tuple[int, int] | None = None
        self.finished = False

    @precondition(lambda self: not self.finished)
    @rule(chunk=payloads)
    def compress(self, chunk: bytes) -> None:
        self.stream += self.co.compress(chunk)
        self.fed += chunk

    @precondition(lambda self: not self.finished)
    @rule(mode=flush_modes)
    def flush(self, mode: int) -> None:
        self.stream += self.co.flush(mode)
        if mode in (sz.Z_SYNC_FLUSH, sz.Z_FULL_FLUSH):
            # Byte-aligned and complete: everything fed so far must decode now.
            d = c_zlib.decompressobj(self.wbits)
            assert d.decompress(self.stream) == self.fed
        if mode == sz.Z_FULL_FLUSH:
            self.restart = (len(self.fed), len(self.stream))

    @precondition(lambda self: not self.finished)
    @rule(tail=payloads)
    def copy_and_finish_the_original(self, tail: bytes) -> None:
        """Finish the original with its own tail; carry on with the copy as if nothing happened."""
        twin = self.co.copy()
        finished = self.stream + self.co.compress(tail) + self.co.flush()
        assert c_zlib.decompressobj(self.wbits).decompress(finished) == self.fed + tail
        self.co = twin

    @precondition(lambda self: not self.finished)
    @rule()
    def finish(self) -> None:
        self.stream += self.co.flush(sz.Z_FINISH)
        self.finished = True
        assert both_decompress(self.stream, self.wbits, None) == (self.fed, self.fed)
        if self.restart is not None:
            # Z_FULL_FLUSH: from there on, the raw DEFLATE data stands alone.
            fed_before, offset = self.restart
            d = c_zlib.decompressobj(-15)
            assert d.decompress(self.stream[offset:]) == self.fed[fed_before:]

    @precondition(lambda self: self.finished)
    @rule(chunk=payloads)
    def calls_after_finish_fail(self, chunk: bytes) -> None:
        try:
            self.co.compress(chunk)
        except sz.error as exc:
            assert str(exc).startswith("Error -2 while compressing data: ")
        else:
            raise AssertionError("compress after Z_FINISH must raise")
        assert self.co.flush(sz.Z_NO_FLUSH) == b""

    @invariant()
    def output_so_far_decodes_to_a_prefix_of_the_input(self) -> None:
        d = c_zlib.decompressobj(self.wbits)
        assert self.fed.startswith(d.decompress(self.stream))


CompressorSession.TestCase.settings = settings(max_examples=80, stateful_step_count=15, deadline=None)
test_compressor_sessions = CompressorSession.TestCase
