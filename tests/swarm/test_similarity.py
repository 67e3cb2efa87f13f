"""Copy, replay and free-riding detection, as a specification (spore.swarm.similarity).

The adversaries here are built the way issue 9's outside attacker built them,
from the protocol alone; thresholds come from honest measurements
(benchmarks/overlap.py), never from these cheats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spore.swarm import codec, similarity
from spore.swarm.similarity import COPY_THRESHOLD, RESTATEMENT_THRESHOLD

P = codec.CodecParams()
LAYOUT = [(256, 256), (128, 192), (300,), (4096 + 100,)]  # blocks, blocks, flat with tail, flat + tail
PLANS = [codec.plan_tensor(s, P) for s in LAYOUT]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def compress(tensors: list[torch.Tensor]) -> codec.Update:
    return [codec.compress(x, pl, P) for x, pl in zip(tensors, PLANS, strict=True)]


def decoded(u: codec.Update) -> list[torch.Tensor]:
    return [codec.decompress(x, P) for x in u]


def honest_like(seed: int, shared: torch.Tensor | None = None) -> codec.Update:
    """An independent update; with `shared`, one that follows a common gradient direction
    as honest peers do (pair cosines of about 0.1-0.15, the measured honest band)."""
    g = gen(seed)
    own = [torch.randn(s, generator=g) for s in LAYOUT]
    if shared is None:
        return compress(own)
    return compress([o + c for o, c in zip(own, shared, strict=True)])


def shared_direction(seed: int = 999) -> list[torch.Tensor]:
    g = gen(seed)
    return [torch.randn(s, generator=g) for s in LAYOUT]


def copy_with_noise(victim: codec.Update, level: float, seed: int) -> codec.Update:
    """The issue's copier: the victim's update + dense noise of `level` x its largest entry, re-compressed."""
    g = gen(seed)
    return compress([x + torch.randn(x.shape, generator=g) * level * float(x.abs().max()) for x in decoded(victim)])


def copy_reselected(victim: codec.Update, seed: int) -> codec.Update:
    """A random half of the victim's entries plus 30% noise: top-k picks many new positions."""
    g = gen(seed)
    half = [x * (torch.rand(x.shape, generator=g) < 0.5) for x in decoded(victim)]
    return compress([x + torch.randn(x.shape, generator=g) * 0.3 * float(x.abs().max()) for x in half])


def verdict(updates: dict[str, codec.Update], stored_at: dict[str, float] | None = None) -> dict[str, str]:
    stored_at = stored_at or {k: float(i) for i, k in enumerate(sorted(updates))}
    return similarity.find_copies(updates, stored_at, P)


# ---------------------------------------------------------------------------
# Copies


def test_honest_like_updates_are_not_copies():
    shared = shared_direction()
    updates = {f"honest{i}": honest_like(i, shared) for i in range(6)}
    vs = {k: similarity.vector(u, P) for k, u in updates.items()}
    cosines = [similarity.cosine(vs[a], vs[b]) for a in vs for b in vs if a < b]
    assert min(cosines) > 0.05 and max(cosines) < 0.2  # the fixture is as similar as honest peers are
    assert verdict(updates) == {}


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(lambda v: copy_with_noise(v, 0.3, 7), id="copy plus 30% noise (index overlap ~0.6)"),
        pytest.param(lambda v: copy_with_noise(v, 0.0, 7), id="exact copy"),
        pytest.param(lambda v: copy_reselected(v, 7), id="half the entries, re-selected positions"),
        pytest.param(lambda v: [codec.compress(2.0 * x, x_pl, P) for x, x_pl in zip(decoded(v), PLANS, strict=True)],
                     id="rescaled copy"),
    ],
)
def test_copies_are_caught_and_the_later_upload_is_the_offender(attack):
    shared = shared_direction()
    updates = {f"honest{i}": honest_like(i, shared) for i in range(4)}
    updates["zcopier"] = attack(updates["honest2"])
    assert verdict(updates) == {"zcopier": "honest2"}


def test_a_copy_with_30pct_noise_evades_the_old_index_overlap_rule_but_not_cosine():
    victim = honest_like(1, shared_direction())
    copy = similarity.vector(copy_with_noise(victim, 0.3, 7), P)
    v = similarity.vector(victim, P)
    assert similarity.index_overlap(copy, v) < 0.75  # the old threshold
    assert similarity.cosine(copy, v) >= COPY_THRESHOLD


OFFENDER_CASES = [
    # (arrival times of a, b, c where c copies a; expected {offender: original})
    ({"a": 1.0, "b": 2.0, "c": 3.0}, {"c": "a"}),  # the later one copied
    ({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": "c"}),  # the earlier arrival is the original, whoever "made" it
    ({"a": 1.0, "b": 2.0, "c": 1.0}, {"a": "c", "c": "a"}),  # same stamp: neither can be cleared
]


@pytest.mark.parametrize(("stored_at", "expected"), OFFENDER_CASES)
def test_offender_rule(stored_at, expected):
    shared = shared_direction()
    a = honest_like(1, shared)
    updates = {"a": a, "b": honest_like(2, shared), "c": copy_with_noise(a, 0.2, 3)}
    assert verdict(updates, stored_at) == expected


def test_a_clique_of_sybil_copies_marks_all_but_the_first():
    shared = shared_direction()
    victim = honest_like(1, shared)
    updates = {"a-victim": victim, **{f"sybil{i:02d}": copy_with_noise(victim, 0.1, i) for i in range(12)}}
    stored_at = {"a-victim": 0.0, **{f"sybil{i:02d}": 1.0 + i for i in range(12)}}
    copies = verdict(updates, stored_at)
    assert set(copies) == {f"sybil{i:02d}" for i in range(12)}
    assert copies["sybil00"] == "a-victim"


def random_update(rng: np.random.Generator) -> codec.Update:
    """A valid random update, cheap to make: random positions, codes and levels."""
    out = []
    for pl in PLANS:
        idx = np.sort(np.argpartition(rng.random((pl.full_chunks, P.chunk)), pl.k, axis=1)[:, : pl.k], axis=1)
        tidx = np.sort(rng.permutation(pl.tail)[: pl.k_tail])[None, :] if pl.tail else np.zeros((0, 0), np.int64)
        lo, hi = sorted(rng.uniform(0.5, 2.0, 2))
        out.append(codec.TensorUpdate(
            pl, torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(rng.integers(0, 4, idx.shape, dtype=np.uint8)),
            torch.from_numpy(tidx.astype(np.int64)), torch.from_numpy(rng.integers(0, 4, tidx.shape, dtype=np.uint8)),
            torch.tensor([-hi, -lo, lo, hi], dtype=torch.float32),
        ))
    return out


def test_candidate_search_finds_a_planted_copy_among_400_updates():
    rng = np.random.default_rng(0)
    updates = {f"peer{i:03d}": random_update(rng) for i in range(400)}
    updates["peer400"] = copy_with_noise(updates["peer123"], 0.3, 5)
    vectors = {k: similarity.vector(u, P) for k, u in updates.items()}
    sketches = similarity.sketch_all(vectors, P)
    pairs = similarity.candidate_pairs(sketches)
    assert ("peer123", "peer400") in pairs
    assert len(pairs) < 0.01 * 401 * 400 / 2  # sub-quadratic in practice: few pairs reach verification
    assert similarity.find_copies(vectors, {k: float(i) for i, k in enumerate(sorted(vectors))}, P) == {
        "peer400": "peer123"
    }


def test_sketches_are_deterministic_and_seeded():
    u = honest_like(1)
    a, b = similarity.sketch(u, P), similarity.sketch(u, P)
    other = similarity.sketch(u, P, similarity.SketchParams(seed=b"another window"))
    assert np.array_equal(a.simhash, b.simhash) and np.array_equal(a.minhash, b.minhash)
    assert not np.array_equal(a.minhash, other.minhash)


def test_cosine_is_exact_and_symmetric():
    a, b = similarity.vector(honest_like(1), P), similarity.vector(honest_like(2), P)
    dense_a = torch.cat([x.reshape(-1) for x in decoded(honest_like(1))]).double()
    assert similarity.cosine(a, b) == similarity.cosine(b, a)
    assert similarity.cosine(a, a) == pytest.approx(1.0, abs=1e-15)
    assert a.norm == pytest.approx(float(dense_a.norm()), rel=1e-15)


# ---------------------------------------------------------------------------
# Restatement of public information


def window_of_peers(seed: int, n: int = 4) -> tuple[list[codec.Update], list[torch.Tensor]]:
    shared = shared_direction(seed + 500)
    updates = [honest_like(seed * 10 + i, shared) for i in range(n)]
    return updates, codec.aggregate(updates, P)


def test_the_previous_aggregate_resubmitted_is_a_restatement():
    _, prev_agg = window_of_peers(1)
    assert similarity.restatement(prev_agg, [prev_agg], P) == pytest.approx(1.0, abs=1e-12)
    recompressed = compress([a.clone() for a in prev_agg])
    assert similarity.restatement(recompressed, [prev_agg], P) >= max(0.7, RESTATEMENT_THRESHOLD)


def test_replayed_and_mixed_earlier_updates_are_restatements():
    prev_updates, prev_agg = window_of_peers(1)
    public = [prev_agg, *prev_updates]
    assert similarity.restatement(prev_updates[2], public, P) == pytest.approx(1.0, abs=1e-12)
    mix = compress([(a + x) / 2 for a, x in zip(prev_agg, decoded(prev_updates[0]), strict=True)])
    assert similarity.restatement(mix, public, P) >= RESTATEMENT_THRESHOLD
    noisy = copy_with_noise(prev_updates[3], 0.3, 1)
    assert similarity.restatement(noisy, public, P) >= RESTATEMENT_THRESHOLD


def test_an_independent_update_restates_little():
    prev_updates, prev_agg = window_of_peers(1)
    fresh = honest_like(777)
    score = similarity.restatement(fresh, [prev_agg, *prev_updates], P)
    assert score < 0.1 < RESTATEMENT_THRESHOLD


def test_restatement_of_a_span_not_just_each_reference():
    """Half one reference, half another: each cosine ~0.7, the span explains all of it."""
    (r1, r2) = honest_like(1), honest_like(2)
    both = [a + b for a, b in zip(decoded(r1), decoded(r2), strict=True)]
    assert similarity.restatement(both, [r1], P) < 0.8
    assert similarity.restatement(both, [r1, r2], P) == pytest.approx(1.0, abs=1e-9)
    assert similarity.restatement(both, [r1, r1, r2], P) == pytest.approx(1.0, abs=1e-9)  # dependent refs skipped


def test_nothing_to_compare():
    u = honest_like(1)
    zero = [torch.zeros(s) for s in LAYOUT]
    assert similarity.restatement(u, [], P) == 0.0
    assert similarity.restatement(zero, [u], P) == 0.0
    assert similarity.restatement(u, [zero], P) == 0.0
    assert similarity.find_copies({"only": u}, {"only": 0.0}, P) == {}
    assert math.isfinite(similarity.cosine(similarity.vector(u, P), similarity.dense_vector(zero, P)))
