"""The update wire format (spore.swarm.wire): exact sizes, round trip, hostile bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spore.swarm import codec, wire
from spore.swarm.codec import CodecParams
from spore.swarm.identity import Identity

P = CodecParams()
LAYOUT = [("w", (128, 192)), ("norm", (128,)), ("odd", (4096 + 10,)), ("tiny", (7,))]
PLANS = codec.plan_layout(LAYOUT, P)
MODEL_ID = b"M" * 32
ALICE = Identity.from_seed(b"a" * 32)
MALLORY = Identity.from_seed(b"m" * 32)


def make_update(seed: int = 0) -> codec.Update:
    g = torch.Generator().manual_seed(seed)
    res = [torch.zeros(s) for _, s in LAYOUT]
    delta = [torch.randn(s, generator=g) for _, s in LAYOUT]
    update, _ = codec.error_feedback_step(res, delta, 0.95, PLANS, P)
    return update


def encoded(coding: int = wire.ELIAS_FANO, window: int = 7, who: Identity = ALICE, update=None) -> bytes:
    header = wire.Header(window, who.id, MODEL_ID, b"B" * 32, P, coding)
    return wire.encode(update or make_update(), header, who)


def decode(data: bytes, **kw):
    args = {"expected_params": P, "model_id": MODEL_ID, "window": 7, "peer_id": ALICE.id} | kw
    return wire.decode(data, PLANS, **args)


@pytest.mark.parametrize("coding", [wire.PLAIN, wire.ELIAS_FANO])
def test_decode_of_encode_is_the_quantized_sparse_update(coding):
    update = make_update()
    header, back = decode(encoded(coding, update=update))
    assert header.window == 7 and header.peer_id == ALICE.id and header.base_digest == b"B" * 32
    for a, b in zip(update, back, strict=True):
        assert torch.equal(codec.decompress(a, P), codec.decompress(b, P))


def test_packed_sizes_match_the_format():
    # One full 64x64 chunk: 64 positions x 12 bits = 96 bytes plainly, 64 x (6 + 2) = 64 with
    # Elias-Fano; 64 codes x 2 bits = 16 bytes; plus a 16-byte level table per sparse tensor.
    assert wire.index_stream_len(1, 64, 4096, wire.PLAIN) == 96
    assert wire.index_stream_len(1, 64, 4096, wire.ELIAS_FANO) == 64
    w = codec.plan_tensor((128, 192), P)  # 6 chunks
    norm = codec.plan_tensor((128,), P)  # 1 short chunk, 64 kept
    odd = codec.plan_tensor((4106,), P)  # 1 full chunk + a tail of 10, all 10 kept
    plain = (
        wire.HEADER.size
        + (16 + 6 * 96 + 6 * 16)  # w
        + (16 + 96 + 16)  # norm
        + (16 + 96 + wire.packed_len(10, 12) + wire.packed_len(74, 2))  # odd
        + 7 * 4  # tiny: dense fp32
        + 64  # signature
    )
    assert wire.expected_size([w, norm, odd, codec.plan_tensor((7,), P)], P, wire.PLAIN) == plain
    assert len(encoded(wire.PLAIN)) == plain
    assert len(encoded(wire.ELIAS_FANO)) == wire.expected_size(PLANS, P, wire.ELIAS_FANO)


def test_two_bit_codes_really_pack_four_to_a_byte():
    codes = np.array([0, 1, 2, 3, 3, 2, 1, 0, 1])
    packed = wire.pack_bits(codes, 2)
    assert packed == bytes([0b11100100, 0b00011011, 0b00000001])
    assert wire.unpack_bits(packed, 9, 2).tolist() == codes.tolist()


def test_a_whole_64x64_chunk_costs_80_bytes_with_elias_fano():
    """4096 fp32 = 16384 bytes -> 64 + 16 bytes: 204.8x before the per-object overhead."""
    per_chunk = wire.index_stream_len(1, 64, 4096, wire.ELIAS_FANO) + wire.packed_len(64, 2)
    assert per_chunk == 80 and 4096 * 4 / per_chunk == 204.8


def resign(data: bytes, who: Identity = ALICE) -> bytes:
    """What an attacker holding `who`'s key can produce: any body, validly signed."""
    body = data[: -64]
    return body + who.sign(wire.SIGN_DOMAIN + body)


def poke(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def body_offset(tensor: int, coding: int = wire.ELIAS_FANO) -> int:
    return wire.HEADER.size + sum(wire.tensor_body_len(p, P, coding) for p in PLANS[:tensor])


GOOD = encoded()
PLAIN_GOOD = encoded(wire.PLAIN)

HOSTILE = {
    # name: (bytes, expected reason)
    "empty": (b"", "truncated"),
    "truncated": (GOOD[:100], "truncated"),
    "cut-short": (GOOD[:-1], "bad-size"),  # the size is checked before the signature
    "bad magic": (resign(poke(GOOD, 0, b"XXXX")), "bad-magic"),
    "future version": (resign(poke(GOOD, 4, b"\x09")), "bad-version"),
    "unknown index coding": (resign(poke(GOOD, 5, b"\x07")), "malformed"),
    "flipped body bit": (poke(GOOD, 300, bytes([GOOD[300] ^ 1])), "bad-signature"),
    "flipped signature bit": (poke(GOOD, len(GOOD) - 3, bytes([GOOD[-3] ^ 1])), "bad-signature"),
    "forger claims alice's id": (
        poke(encoded(who=MALLORY)[:-64], 16, ALICE.id) + MALLORY.sign(b"x"), "bad-signature"),
    "mallory's own update stored as alice's": (encoded(who=MALLORY), "wrong-peer"),
    "wrong window": (encoded(window=6), "wrong-window"),
    "wrong model": (resign(poke(GOOD, 48, b"N" * 32)), "wrong-model"),
    "other codec": (resign(poke(GOOD, 118, struct.pack("<H", 32))), "bad-codec"),
    "appended junk": (resign(GOOD[:-64] + b"\0" * 16), "bad-size"),
    "NaN level": (resign(poke(GOOD, body_offset(0), struct.pack("<f", float("nan")))), "non-finite"),
    "Inf dense value": (resign(poke(GOOD, body_offset(3), struct.pack("<f", float("inf")))), "non-finite"),
    "plain index out of range (tail of 10)": (
        resign(poke(PLAIN_GOOD, body_offset(2, wire.PLAIN) + 16 + 96, b"\xff\xff")), "index-out-of-range"),
    "plain indices not increasing": (
        resign(poke(PLAIN_GOOD, body_offset(0, wire.PLAIN) + 16, b"\xff\xff\xff")), "malformed"),
    "elias-fano chunk with a missing position": (
        resign(poke(GOOD, body_offset(0) + 16 + 6 * 48, b"\x00")), "malformed"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_payloads_are_rejected_with_a_reason(name):
    data, reason = HOSTILE[name]
    with pytest.raises(wire.WireError) as err:
        decode(data)
    assert err.value.reason == reason, err.value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_corruption_gives_a_wire_error_never_a_crash(data):
    """Random edits to a valid update, re-signed so they reach the body parser."""
    buf = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 65))
        buf[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(buf) - 64))
        buf = buf[:cut] + buf[len(buf) - 64 :]
    try:
        _, update = decode(resign(bytes(buf)))
    except wire.WireError:
        return
    # Accepted: then it must be a well-formed update for this model.
    for u in update:
        dense = codec.decompress(u, P)
        assert torch.isfinite(dense).all() and dense.shape == u.plan.shape


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_rejected(blob):
    with pytest.raises(wire.WireError):
        decode(blob)
