"""The update wire format, version 1 (docs/protocol.md, "Update objects").

    header   132 bytes, little-endian (see HEADER)
    body     for each tensor of the model, in canonical order:
               dense tensor:  numel x f32
               sparse tensor: lut 4 x f32, then the full chunks' indices,
                              then the tail chunk's indices, then all codes
                              (2 bits each, 4 per byte, full chunks first)
    trailer  64-byte ed25519 signature of b"spore/update/v1\\0" + header + body

Every size is fixed by the model layout and the codec parameters, so a reader
knows the exact object size before reading it (`expected_size`) and refuses
anything else. Indices are coded per chunk either plainly (12 bits each) or
with Elias-Fano (8 bits each for 64 of 4096; the default). Both codings
are canonical: the positions are strictly increasing and padding bits are zero,
so one update has exactly one encoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from spore.swarm.codec import DENSE, CodecParams, TensorPlan, TensorUpdate, Update
from spore.swarm.identity import SIG_BYTES, Identity, verify

MAGIC = b"SPRU"
VERSION = 1
PLAIN, ELIAS_FANO = 0, 1
SIGN_DOMAIN = b"spore/update/v1\0"

# magic, version, index coding, inner steps (0: all H), window, peer id, model id,
# base digest, chunk, block, topk, quant bits, reserved, tensor count, body length
HEADER = struct.Struct("<4sBBHQ32s32s32sIHHB3sII")
assert HEADER.size == 132


class WireError(ValueError):
    """A payload that is not a valid update; `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Header:
    window: int
    peer_id: bytes
    model_id: bytes
    base_digest: bytes  # theta the update was computed from (sync check)
    params: CodecParams
    index_coding: int = ELIAS_FANO
    # Inner steps the update comes from: a slow peer sends what it has after
    # its first `steps` batches; 0 means all H (the manifest's inner_steps).
    steps: int = 0


# ---------------------------------------------------------------------------
# Bit packing (LSB-first within each byte)


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Each value in `width` bits, LSB first, concatenated and zero-padded to a byte."""
    v = np.asarray(values, dtype=np.uint32).reshape(-1)
    bits = ((v[:, None] >> np.arange(width, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def unpack_bits(buf: bytes, count: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    if bits[count * width :].any():
        raise WireError("malformed", "non-zero padding bits")
    bits = bits[: count * width].reshape(count, width).astype(np.uint32)
    return (bits << np.arange(width, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)


def packed_len(count: int, width: int) -> int:
    return (count * width + 7) // 8


# ---------------------------------------------------------------------------
# Index coding. Each chunk holds n strictly increasing positions in [0, U).
#
# Elias-Fano: with l = floor(log2(U / n)) low bits per position, the low
# parts are stored plainly (n * l bits) and the high parts (v >> l, which
# never decrease) as a bit vector of n + U / 2^l bits where the i-th set
# bit sits at position (v_i >> l) + i. For n = 64, U = 4096: 6 + 2 bits each.


def ef_low_bits(universe: int, n: int) -> int:
    return max(0, (universe // n).bit_length() - 1)


def index_stream_len(chunks: int, n: int, universe: int, coding: int) -> int:
    if chunks == 0 or n == 0:
        return 0
    if coding == PLAIN:
        return packed_len(chunks * n, (universe - 1).bit_length())
    low = ef_low_bits(universe, n)
    return packed_len(chunks * n, low) + packed_len(chunks * (n + (universe >> low)), 1)


def encode_indices(idx: np.ndarray, universe: int, coding: int) -> bytes:
    chunks, n = idx.shape
    if chunks == 0 or n == 0:
        return b""
    if coding == PLAIN:
        return pack_bits(idx, (universe - 1).bit_length())
    low = ef_low_bits(universe, n)
    upper_len = n + (universe >> low)
    high = (idx >> low) + np.arange(n)[None, :]
    bitvec = np.zeros((chunks, upper_len), dtype=np.uint8)
    np.put_along_axis(bitvec, high, 1, axis=1)
    return pack_bits(idx & ((1 << low) - 1), low) + np.packbits(
        bitvec.reshape(-1), bitorder="little"
    ).tobytes()


def decode_indices(buf: bytes, chunks: int, n: int, universe: int, limit: int, coding: int) -> np.ndarray:
    """Positions (chunks, n); each row strictly increasing and < `limit`."""
    if chunks == 0 or n == 0:
        return np.zeros((chunks, n), dtype=np.int64)
    if coding == PLAIN:
        idx = unpack_bits(buf, chunks * n, (universe - 1).bit_length()).reshape(chunks, n).astype(np.int64)
    else:
        low = ef_low_bits(universe, n)
        upper_len = n + (universe >> low)
        lo_len = packed_len(chunks * n, low)
        lows = unpack_bits(buf[:lo_len], chunks * n, low).reshape(chunks, n).astype(np.int64)
        bits = np.unpackbits(np.frombuffer(buf[lo_len:], dtype=np.uint8), bitorder="little")
        if bits[chunks * upper_len :].any():
            raise WireError("malformed", "non-zero padding bits")
        bits = bits[: chunks * upper_len].reshape(chunks, upper_len)
        if not (bits.sum(axis=1) == n).all():
            raise WireError("malformed", f"an Elias-Fano chunk does not hold exactly {n} positions")
        ones = np.nonzero(bits)[1].reshape(chunks, n)  # row-major: sorted within each chunk
        idx = ((ones - np.arange(n)[None, :]) << low) | lows
    if (idx >= limit).any():
        raise WireError("index-out-of-range", f"a position is >= the chunk length {limit}")
    if n > 1 and not (np.diff(idx, axis=1) > 0).all():
        raise WireError("malformed", "positions in a chunk are not strictly increasing")
    return idx


# ---------------------------------------------------------------------------
# Whole objects


def tensor_body_len(plan: TensorPlan, p: CodecParams, coding: int) -> int:
    if plan.mode == DENSE:
        return 4 * plan.numel
    return (
        16
        + index_stream_len(plan.full_chunks, plan.k, p.chunk, coding)
        + index_stream_len(1 if plan.tail else 0, plan.k_tail, p.chunk, coding)
        + packed_len(plan.kept, 2)
    )


def expected_size(plans: list[TensorPlan], p: CodecParams, coding: int = ELIAS_FANO) -> int:
    """The exact byte size of a valid update for this model and codec."""
    return HEADER.size + sum(tensor_body_len(pl, p, coding) for pl in plans) + SIG_BYTES


def encode(update: Update, header: Header, identity: Identity) -> bytes:
    """Serialize and sign an update. `header.peer_id` must be the signer's id."""
    if header.peer_id != identity.id:
        raise ValueError("the header's peer id must be the signing identity's id")
    p, coding = header.params, header.index_coding
    body = bytearray()
    for u in update:
        if u.plan.mode == DENSE:
            assert u.values is not None
            body += u.values.to(torch.float32).numpy().astype("<f4").tobytes()
            continue
        assert u.lut is not None and u.indices is not None and u.codes is not None
        assert u.tail_indices is not None and u.tail_codes is not None
        body += u.lut.numpy().astype("<f4").tobytes()
        body += encode_indices(u.indices.numpy(), p.chunk, coding)
        body += encode_indices(u.tail_indices.numpy(), p.chunk, coding)
        body += pack_bits(np.concatenate([u.codes.numpy().reshape(-1), u.tail_codes.numpy().reshape(-1)]), 2)
    head = HEADER.pack(
        MAGIC, VERSION, coding, header.steps, header.window, header.peer_id, header.model_id,
        header.base_digest, p.chunk, p.block, p.topk, p.quant_bits, b"\0\0\0",
        len(update), len(body),
    )
    signed = head + bytes(body)
    return signed + identity.sign(SIGN_DOMAIN + signed)


def read_header(data: bytes) -> Header:
    """Parse and sanity-check the fixed header; no signature check yet."""
    if len(data) < HEADER.size + SIG_BYTES:
        raise WireError("truncated", f"{len(data)} bytes is shorter than header and signature")
    (magic, version, coding, steps, window, peer_id, mid, base, chunk, block, topk, qbits,
     reserved2, _n_tensors, _body_len) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad-magic", f"magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise WireError("bad-version", f"wire version {version} is not {VERSION}")
    if coding not in (PLAIN, ELIAS_FANO):
        raise WireError("malformed", f"unknown index coding {coding}")
    if reserved2 != b"\0\0\0":
        raise WireError("malformed", "reserved header bytes are not zero")
    try:
        params = CodecParams(chunk=chunk, block=block, topk=topk, quant_bits=qbits)
    except ValueError as e:
        raise WireError("bad-codec", str(e)) from None
    return Header(window, peer_id, mid, base, params, coding, steps)


def decode(
    data: bytes,
    plans: list[TensorPlan],
    *,
    expected_params: CodecParams,
    model_id: bytes,
    window: int | None = None,
    peer_id: bytes | None = None,
    max_level: float = float("inf"),
) -> tuple[Header, Update]:
    """Verify and parse an update. Every failure is a WireError with a reason.

    Checks, in order: header, exact size, signature by the id in the header,
    the claimed peer id, window, model id and codec parameters against what
    the reader expects, then every field of the body (positions in range and
    increasing, levels finite, of the form [-hi, -lo, lo, hi] with
    0 <= lo <= hi <= max_level, dense values finite and within max_level).
    """
    header = read_header(data)
    if header.params == expected_params:  # cheap size check first: no signature work on junk
        want = expected_size(plans, expected_params, header.index_coding)
        if len(data) != want:
            raise WireError("bad-size", f"{len(data)} bytes, a valid update is exactly {want}")
    if not verify(header.peer_id, data[-SIG_BYTES:], SIGN_DOMAIN + data[:-SIG_BYTES]):
        raise WireError("bad-signature", "the signature does not verify under the header's peer id")
    if peer_id is not None and header.peer_id != peer_id:
        raise WireError("wrong-peer", f"signed by {header.peer_id.hex()[:16]}, stored as {peer_id.hex()[:16]}")
    if window is not None and header.window != window:
        raise WireError("wrong-window", f"update is for window {header.window}, expected {window}")
    if header.model_id != model_id:
        raise WireError("wrong-model", "model fingerprint does not match this run's model")
    if header.params != expected_params:
        raise WireError("bad-codec", f"codec {header.params} is not the run's {expected_params}")
    p, coding = header.params, header.index_coding
    want = expected_size(plans, p, coding)
    if len(data) != want:
        raise WireError("bad-size", f"{len(data)} bytes, a valid update is exactly {want}")
    _, _, _, _, _, _, _, _, _, _, _, _, _, n_tensors, body_len = HEADER.unpack_from(data)
    if n_tensors != len(plans) or body_len != want - HEADER.size - SIG_BYTES:
        raise WireError("malformed", "tensor count or body length does not match the model")

    pos = HEADER.size
    update: Update = []
    for plan in plans:
        n = tensor_body_len(plan, p, coding)
        chunk = data[pos : pos + n]
        pos += n
        update.append(_decode_tensor(chunk, plan, p, coding, max_level))
    return header, update


def _decode_tensor(buf: bytes, plan: TensorPlan, p: CodecParams, coding: int, max_level: float) -> TensorUpdate:
    if plan.mode == DENSE:
        values = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        if not np.isfinite(values).all():
            raise WireError("non-finite", "a dense value is NaN or infinite")
        if np.abs(values).max(initial=0.0) > max_level:
            raise WireError("absurd-scale", f"a dense value exceeds {max_level}")
        return TensorUpdate(plan, values=torch.from_numpy(values.copy()).reshape(plan.shape))
    lut = np.frombuffer(buf[:16], dtype="<f4").astype(np.float32)
    if not np.isfinite(lut).all():
        raise WireError("non-finite", "a quantization level is NaN or infinite")
    if not (lut[0] == -lut[3] and lut[1] == -lut[2] and 0 <= lut[2] <= lut[3]):
        raise WireError("malformed", f"levels {lut.tolist()} are not [-hi, -lo, lo, hi] with 0 <= lo <= hi")
    if lut[3] > max_level:
        raise WireError("absurd-scale", f"quantization level {float(lut[3]):.3g} exceeds {max_level}")
    pos = 16
    n_full = index_stream_len(plan.full_chunks, plan.k, p.chunk, coding)
    idx = decode_indices(buf[pos : pos + n_full], plan.full_chunks, plan.k, p.chunk, p.chunk, coding)
    pos += n_full
    n_tail = index_stream_len(1 if plan.tail else 0, plan.k_tail, p.chunk, coding)
    tidx = decode_indices(buf[pos : pos + n_tail], 1 if plan.tail else 0, plan.k_tail, p.chunk, plan.tail or 1, coding)
    pos += n_tail
    codes = unpack_bits(buf[pos:], plan.kept, 2).astype(np.uint8)
    n_main = plan.full_chunks * plan.k
    return TensorUpdate(
        plan,
        indices=torch.from_numpy(idx),
        codes=torch.from_numpy(codes[:n_main].reshape(plan.full_chunks, plan.k).copy()),
        tail_indices=torch.from_numpy(tidx),
        tail_codes=torch.from_numpy(codes[n_main:].reshape(tidx.shape).copy()),
        lut=torch.from_numpy(lut.copy()),
    )
