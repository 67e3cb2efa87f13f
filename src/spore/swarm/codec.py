"""SparseLoCo's compressor: chunked top-k, 2-bit quantization, error feedback.

Pure logic on tensors: no files, no network. The byte layout lives in wire.py.

One peer, one window (spec section 1):

    e     <- beta * e + delta                  # error feedback accumulates
    sent  <- Q(TopK(e))                        # 64 of every 4096, 2 bits each
    e     <- e - sent                          # what was not sent waits its turn

Chunking. A 2-D tensor whose sides are multiples of 64 is cut into 64x64
blocks (one block = one chunk of 4096). Any other tensor is flattened and cut
into runs of 4096; the last run may be shorter. A tensor with fewer than k
elements is not compressed at all: it is sent whole (dense fp32).

Top-k. In each chunk the k entries of largest magnitude are kept; their
positions inside the chunk (0..4095) are sorted ascending.

Quantization (2 bits, 4 levels per tensor). The kept values of a tensor are
split by sign and by magnitude at the median magnitude m: the levels are
[-hi, -lo, +lo, +hi], where lo is the mean magnitude of the values with
|v| <= m and hi the mean of those with |v| > m. Signs are never wrong, each
level is the mean of one half of the values, each value is rounded to the
nearest level of its sign, and the rounding error stays in e for the next
window.

Exact outer step (spec section 1, "Aggregate" and "Apply"). Compression runs
on one peer and may round however that peer's CPU likes; everything after
the bytes are published must give the same bits on every machine, or honest
peers fall out of sync (issue 9: the fused multiply-add in
`sub_(a, alpha=lr)` changed theta between ATEN_CPU_CAPABILITY=default and
avx2 whenever alpha != 1, and the float64 `.sum()` behind the clip norms
reduced in an order that follows the vector width). So decode -> aggregate -> apply
is defined as the following sequence of IEEE-754 binary32 operations, each
rounded once to nearest-even, with no fused multiply-add, no reassociation,
no reciprocal in place of a division and no flush-to-zero. Decoded values
are exact (a copy of a LUT level or of a dense value, 0 where nothing was
sent). For the updates u_1..u_R in canonical order (ascending peer id):

    n_r    = sqrt(float64(sum of squares of u_r's values, computed exactly))
             -- the values of a sparse tensor are its 4 levels, so the exact
             sum is sum_l count_l * level_l**2 in rational arithmetic; it is
             rounded to float64 once, then sqrt is the IEEE float64 sqrt
    med    = median(n_1..n_R) in float64 (mean of the middle two when R is even)
    clip_r = 1 if n_r <= med or n_r == 0 else med / n_r       (float64)
    c_r    = float32(clip_r * w_r)      (w_r the incentive weight, 1 if none;
                                         the product in float64, rounded once)
    per coordinate, per tensor:
    S      = 0;  for r = 1..R in order:  S = S + (c_r * x_r)   (two roundings)
    A      = S / R                          mean="all"
    A      = S / max(1, #{r : x_r != 0})    mean="chosen"
    theta  = theta - (float32(alpha) * A)   (multiply, then subtract)

Elementwise binary32 operations are correctly rounded on every IEEE machine
whatever its vector width, so this order fixes every bit; no step reduces
floats in a machine-chosen order.
"""

from __future__ import annotations

import math
import statistics
import struct
from dataclasses import dataclass
from fractions import Fraction

import torch

DENSE, BLOCKS, FLAT = 0, 1, 2


@dataclass(frozen=True)
class CodecParams:
    chunk: int = 4096
    block: int = 64  # edge of a 2-D block; block * block == chunk
    topk: int = 64
    quant_bits: int = 2

    def __post_init__(self) -> None:
        if self.block * self.block != self.chunk:
            raise ValueError(f"block {self.block} x {self.block} must equal chunk {self.chunk}")
        if not 0 < self.topk <= self.chunk:
            raise ValueError(f"topk must be in 1..{self.chunk}, got {self.topk}")
        if self.chunk & (self.chunk - 1) or self.chunk > 1 << 16:
            raise ValueError(f"chunk must be a power of two <= 65536, got {self.chunk}")
        if self.quant_bits != 2:
            raise ValueError("only 2-bit quantization is defined")

    @property
    def index_bits(self) -> int:
        return (self.chunk - 1).bit_length()


@dataclass(frozen=True)
class TensorPlan:
    """How one tensor is chunked; both sides derive it from the shape alone."""

    shape: tuple[int, ...]
    mode: int
    full_chunks: int  # chunks of exactly `chunk` elements
    tail: int  # length of the last, shorter chunk (0: none)
    k: int  # entries kept per full chunk
    k_tail: int  # entries kept in the tail chunk

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def kept(self) -> int:
        return self.full_chunks * self.k + (self.k_tail if self.tail else 0)


def plan_tensor(shape: tuple[int, ...], p: CodecParams) -> TensorPlan:
    n = math.prod(shape)
    if n < p.topk:
        return TensorPlan(tuple(shape), DENSE, 0, 0, 0, 0)
    if len(shape) == 2 and shape[0] % p.block == 0 and shape[1] % p.block == 0:
        return TensorPlan(tuple(shape), BLOCKS, n // p.chunk, 0, p.topk, 0)
    full, tail = divmod(n, p.chunk)
    return TensorPlan(tuple(shape), FLAT, full, tail, p.topk, min(p.topk, tail))


def plan_layout(layout: list[tuple[str, tuple[int, ...]]], p: CodecParams) -> list[TensorPlan]:
    return [plan_tensor(shape, p) for _, shape in layout]


# ---------------------------------------------------------------------------
# Chunk views


def to_chunks(x: torch.Tensor, plan: TensorPlan, p: CodecParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(full chunks as (m, chunk), tail as (1, tail) or (0, 0))."""
    if plan.mode == BLOCKS:
        r, c = plan.shape
        b = p.block
        blocks = x.reshape(r // b, b, c // b, b).permute(0, 2, 1, 3).reshape(-1, p.chunk)
        return blocks, x.new_zeros((0, 0))
    flat = x.reshape(-1)
    full = flat[: plan.full_chunks * p.chunk].reshape(plan.full_chunks, p.chunk)
    tail = flat[plan.full_chunks * p.chunk :].reshape(1, -1) if plan.tail else x.new_zeros((0, 0))
    return full, tail


def from_chunks(full: torch.Tensor, tail: torch.Tensor, plan: TensorPlan, p: CodecParams) -> torch.Tensor:
    if plan.mode == BLOCKS:
        r, c = plan.shape
        b = p.block
        return full.reshape(r // b, c // b, b, b).permute(0, 2, 1, 3).reshape(r, c)
    parts = [full.reshape(-1)] + ([tail.reshape(-1)] if plan.tail else [])
    return torch.cat(parts).reshape(plan.shape)


# ---------------------------------------------------------------------------
# The compressed update


@dataclass
class TensorUpdate:
    """One tensor's share of an update.

    Sparse: `indices` (m, k) int64 ascending positions inside each chunk and
    `codes` (m, k) uint8 in 0..3 for the full chunks, the same for the tail
    chunk (`tail_indices`, `tail_codes`, shape (1, k_tail) or (0, 0)), and
    `lut` (4,) float32. Dense: `values` holds the whole tensor.
    """

    plan: TensorPlan
    indices: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    tail_indices: torch.Tensor | None = None
    tail_codes: torch.Tensor | None = None
    lut: torch.Tensor | None = None
    values: torch.Tensor | None = None


Update = list[TensorUpdate]


def _topk_sorted(chunks: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if chunks.numel() == 0:
        empty = torch.zeros((chunks.shape[0], 0), dtype=torch.int64)
        return empty, chunks.new_zeros((chunks.shape[0], 0))
    idx = torch.topk(chunks.abs(), k, dim=1, sorted=False).indices
    idx = torch.sort(idx, dim=1).values
    return idx, torch.gather(chunks, 1, idx)


def fit_levels(values: torch.Tensor) -> torch.Tensor:
    """The 4 levels [-hi, -lo, +lo, +hi] of a tensor's kept values (see module doc)."""
    mag = values.abs().to(torch.float64).reshape(-1)
    if mag.numel() == 0:
        return torch.zeros(4, dtype=torch.float32)
    m = torch.quantile(mag, 0.5) if mag.numel() > 1 else mag[0]
    small, large = mag[mag <= m], mag[mag > m]
    lo = small.mean() if small.numel() else m
    hi = large.mean() if large.numel() else lo
    return torch.tensor([-hi, -lo, lo, hi], dtype=torch.float32)


def quantize(values: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """2-bit codes: 0 -> -hi, 1 -> -lo, 2 -> +lo, 3 -> +hi."""
    threshold = (lut[3] + lut[2]) / 2  # midpoint of the two magnitudes
    large = values.abs() > threshold
    neg = values < 0
    codes = torch.where(neg, torch.where(large, 0, 1), torch.where(large, 3, 2))
    return codes.to(torch.uint8)


def compress(e: torch.Tensor, plan: TensorPlan, p: CodecParams) -> TensorUpdate:
    """Q(TopK(e)) of one error-feedback buffer."""
    if plan.mode == DENSE:
        return TensorUpdate(plan, values=e.detach().to(torch.float32).clone())
    full, tail = to_chunks(e.detach().to(torch.float32), plan, p)
    idx, val = _topk_sorted(full, plan.k)
    tidx, tval = _topk_sorted(tail, plan.k_tail)
    lut = fit_levels(torch.cat([val.reshape(-1), tval.reshape(-1)]))
    return TensorUpdate(plan, idx, quantize(val, lut), tidx, quantize(tval, lut), lut)


def decompress(u: TensorUpdate, p: CodecParams) -> torch.Tensor:
    """The dense tensor an update stands for (zeros where nothing was sent)."""
    plan = u.plan
    if plan.mode == DENSE:
        assert u.values is not None
        return u.values.reshape(plan.shape)
    assert u.indices is not None and u.codes is not None and u.lut is not None
    full = torch.zeros((plan.full_chunks, p.chunk), dtype=torch.float32)
    full.scatter_(1, u.indices, u.lut[u.codes.long()])
    tail = torch.zeros((1 if plan.tail else 0, plan.tail), dtype=torch.float32)
    if plan.tail:
        assert u.tail_indices is not None and u.tail_codes is not None
        tail.scatter_(1, u.tail_indices, u.lut[u.tail_codes.long()])
    return from_chunks(full, tail, plan, p)


def sent_values(u: TensorUpdate) -> torch.Tensor:
    """The values an update carries, flat (used for norms without densifying)."""
    if u.plan.mode == DENSE:
        assert u.values is not None
        return u.values.reshape(-1)
    assert u.lut is not None and u.codes is not None and u.tail_codes is not None
    return torch.cat([u.lut[u.codes.long()].reshape(-1), u.lut[u.tail_codes.long()].reshape(-1)])


# ---------------------------------------------------------------------------
# Error feedback


def error_feedback_step(
    residual: list[torch.Tensor],
    pseudo_gradient: list[torch.Tensor],
    beta: float,
    plans: list[TensorPlan],
    p: CodecParams,
) -> tuple[Update, list[torch.Tensor]]:
    """One window of SparseLoCo's compressor for a whole model.

    Returns the update to publish and the new residual, which satisfy
    decompress(update) + new_residual == beta * residual + pseudo_gradient.
    """
    update: Update = []
    new_residual: list[torch.Tensor] = []
    for e_old, delta, plan in zip(residual, pseudo_gradient, plans, strict=True):
        acc = beta * e_old + delta.to(torch.float32)
        u = compress(acc, plan, p)
        update.append(u)
        new_residual.append(acc - decompress(u, p))
    return update, new_residual


# ---------------------------------------------------------------------------
# Aggregation


def squared_norm(update: Update) -> Fraction:
    """The exact sum of squares of an update's values, as a rational number.

    A sparse tensor's values are copies of its 4 levels, so the sum is
    sum_l count_l * level_l**2; counts are integers and each float32 level is
    an exact rational, so no rounding and no summation order enters.
    """
    total = Fraction(0)
    for u in update:
        if u.plan.mode == DENSE:
            assert u.values is not None
            total += sum((Fraction(v) ** 2 for v in u.values.reshape(-1).tolist()), Fraction(0))
            continue
        assert u.lut is not None and u.codes is not None and u.tail_codes is not None
        codes = torch.cat([u.codes.reshape(-1), u.tail_codes.reshape(-1)]).long()
        counts = torch.bincount(codes, minlength=4).tolist()
        total += sum((c * Fraction(level) ** 2 for c, level in zip(counts, u.lut.tolist(), strict=True)), Fraction(0))
    return total


def update_norm(update: Update) -> float:
    """L2 norm of a whole update: the exact squared norm rounded once to float64, then sqrt.

    Every reader gets the same bits (see "Exact outer step" above).
    """
    return math.sqrt(float(squared_norm(update)))


def clip_factors(updates: list[Update]) -> list[float]:
    """Scale each update down to the median norm of the gathered updates.

    A poisoned giant update cannot dominate: nobody contributes more than the
    median peer (spec section 1, "Aggregate").
    """
    norms = [update_norm(u) for u in updates]
    if not norms:
        return []
    med = statistics.median(norms)
    return [1.0 if n <= med or n == 0.0 else med / n for n in norms]


def aggregate(
    updates: list[Update], p: CodecParams, mean: str = "all", weights: list[float] | None = None
) -> list[torch.Tensor]:
    """Median-norm-clipped mean of the gathered updates, one dense tensor per parameter.

    mean="all": divide by the number of updates R (SparseLoCo paper).
    mean="chosen": divide each coordinate by the number of updates that sent
    it (Templar). Callers must pass updates in a canonical order (sorted by
    peer id) so every reader sums in the same order and gets the same bits.
    """
    if mean not in ("all", "chosen"):
        raise ValueError(f"mean must be 'all' or 'chosen', got {mean!r}")
    if not updates:
        raise ValueError("nothing to aggregate")
    factors = clip_factors(updates)
    if weights is not None:
        factors = [f * w for f, w in zip(factors, weights, strict=True)]
    coeffs = [to_float32(f) for f in factors]  # c_r: one rounding of the float64 product
    out: list[torch.Tensor] = []
    for j in range(len(updates[0])):
        plan = updates[0][j].plan
        total = torch.zeros(plan.shape, dtype=torch.float32)
        count = torch.zeros(plan.shape, dtype=torch.float32)
        for c, upd in zip(coeffs, updates, strict=True):  # fixed order: the callers' canonical one
            dense = decompress(upd[j], p)
            total = torch.add(total, torch.mul(dense, c))  # multiply, round; add, round
            if mean == "chosen":
                count = torch.add(count, (dense != 0).to(torch.float32))  # small integers: exact
        # Divide by a tensor, never by a scalar: CUDA turns a scalar division
        # into a multiplication by the reciprocal, which rounds differently.
        divisor = torch.full_like(total, float(len(updates))) if mean == "all" else count.clamp(min=1.0)
        out.append(torch.div(total, divisor))
    return out


def to_float32(x: float) -> float:
    """x rounded once to the nearest binary32 value (returned as a Python float, exactly)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def outer_step(theta: torch.Tensor, delta: torch.Tensor, alpha: float) -> None:
    """theta <- theta - float32(alpha) * delta, in place: multiply, round, subtract, round.

    Never `theta.sub_(delta, alpha=alpha)`: a vectorized CPU kernel fuses that
    into one multiply-add (one rounding), the scalar kernel does not (two),
    so theta would depend on the CPU's vector unit (issue 9).
    """
    step = torch.mul(delta.to(torch.float32), to_float32(alpha))
    theta.sub_(step)  # alpha=1: a fused form would round the same way
