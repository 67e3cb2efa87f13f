"""SparseLoCo's compressor, as a specification (spore.swarm.codec)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spore.swarm import codec
from spore.swarm.codec import BLOCKS, DENSE, FLAT, CodecParams

P = CodecParams()


def test_chunking_plans_follow_the_shape():
    cases = {
        # shape: (mode, full chunks, tail, k per full chunk, k in the tail)
        (128, 128): (BLOCKS, 4, 0, 64, 0),
        (320, 64): (BLOCKS, 5, 0, 64, 0),
        (128,): (FLAT, 0, 128, 64, 64),
        (4096 + 10,): (FLAT, 1, 10, 64, 10),
        (100, 50): (FLAT, 1, 904, 64, 64),  # not 64-divisible: flattened
        (63,): (DENSE, 0, 0, 0, 0),  # fewer than k elements: sent whole
    }
    for shape, want in cases.items():
        plan = codec.plan_tensor(shape, P)
        assert (plan.mode, plan.full_chunks, plan.tail, plan.k, plan.k_tail) == want, shape


def test_blocks_are_64x64_tiles():
    x = torch.arange(128 * 192, dtype=torch.float32).reshape(128, 192)
    plan = codec.plan_tensor((128, 192), P)
    full, _ = codec.to_chunks(x, plan, P)
    assert full.shape == (6, 4096)
    assert torch.equal(full[1].reshape(64, 64), x[0:64, 64:128])  # block (0, 1)
    assert torch.equal(full[3].reshape(64, 64), x[64:128, 0:64])  # block (1, 0)
    assert torch.equal(codec.from_chunks(full, torch.zeros(0, 0), plan, P), x)


def test_topk_keeps_the_largest_magnitudes_of_each_chunk():
    x = torch.randn(64, 128)
    plan = codec.plan_tensor(tuple(x.shape), P)
    u = codec.compress(x, plan, P)
    full, _ = codec.to_chunks(x, plan, P)
    for c in range(plan.full_chunks):
        want = set(torch.topk(full[c].abs(), 64).indices.tolist())
        assert set(u.indices[c].tolist()) == want
        assert torch.all(u.indices[c][1:] > u.indices[c][:-1])  # ascending


def test_quantization_keeps_signs_and_uses_four_levels():
    x = torch.randn(128, 128)
    plan = codec.plan_tensor(tuple(x.shape), P)
    u = codec.compress(x, plan, P)
    lo, hi = float(u.lut[2]), float(u.lut[3])
    assert 0 < lo < hi and torch.equal(u.lut, torch.tensor([-hi, -lo, lo, hi]))
    full, _ = codec.to_chunks(x, plan, P)
    kept = torch.gather(full, 1, u.indices)
    sent = u.lut[u.codes.long()]
    assert torch.equal(torch.sign(sent), torch.sign(kept))
    # each value goes to the nearer level of its sign
    nearer_hi = (kept.abs() - hi).abs() < (kept.abs() - lo).abs()
    assert torch.equal(sent.abs() == hi, nearer_hi)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(64, 64), (128, 192), (200,), (4096 + 77,), (70, 70), (10,)]),
    beta=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_error_feedback_identity(shape, beta, seed):
    """sent + new residual == beta * old residual + pseudo-gradient, for every coordinate."""
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(shape, generator=g)
    delta = torch.randn(shape, generator=g) * 0.1
    plans = [codec.plan_tensor(shape, P)]
    update, (new,) = codec.error_feedback_step([old], [delta], beta, plans, P)
    sent = codec.decompress(update[0], P)
    torch.testing.assert_close(sent + new, beta * old + delta, rtol=0, atol=1e-6)
    # Coordinates not sent keep their accumulated value exactly.
    assert torch.equal(new[sent == 0], (beta * old + delta)[sent == 0])


def test_error_feedback_loses_nothing_and_sends_every_coordinate_in_turn():
    shape = (64, 64)
    plans = [codec.plan_tensor(shape, P)]
    delta = torch.zeros(shape)
    delta.view(-1)[:65] = 1.0  # 65 equal entries, only 64 fit in a window
    e = [torch.zeros(shape)]
    sent_total = torch.zeros(shape)
    for _ in range(2):
        upd, e = codec.error_feedback_step(e, [delta], 1.0, plans, P)
        sent_total += codec.decompress(upd[0], P)
    assert (sent_total.view(-1)[:65] > 0).all()  # the one left out went next window
    torch.testing.assert_close(sent_total + e[0], 2 * delta)  # conservation with beta = 1


def _update(scale: float, seed: int, shape=(128, 128)) -> codec.Update:
    g = torch.Generator().manual_seed(seed)
    return [codec.compress(torch.randn(shape, generator=g) * scale, codec.plan_tensor(shape, P), P)]


def test_aggregation_clips_each_update_to_the_median_norm():
    updates = [_update(1.0, 1), _update(1.0, 2), _update(1e6, 3)]  # the third is poisoned
    norms = [codec.update_norm(u) for u in updates]
    factors = codec.clip_factors(updates)
    med = sorted(norms)[1]
    assert factors[2] * norms[2] == __import__("pytest").approx(med, rel=1e-6)
    (agg,) = codec.aggregate(updates, P)
    assert float(agg.norm()) <= med  # mean of three vectors, none longer than the median


def test_mean_over_all_versus_over_peers_that_chose_the_coordinate():
    a, b = _update(1.0, 1), _update(1.0, 2)
    da, db = codec.decompress(a[0], P), codec.decompress(b[0], P)
    (all_mean,) = codec.aggregate([a, b], P, mean="all")
    (chosen,) = codec.aggregate([a, b], P, mean="chosen")
    f = codec.clip_factors([a, b])
    torch.testing.assert_close(all_mean, (da * f[0] + db * f[1]) / 2)
    only_a = (da != 0) & (db == 0)
    torch.testing.assert_close(chosen[only_a], (da * f[0])[only_a])


def test_aggregation_is_bit_reproducible():
    updates = [_update(1.0, s) for s in range(4)]
    first = codec.aggregate(updates, P)
    torch.set_num_threads(2)
    again = codec.aggregate(updates, P)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
