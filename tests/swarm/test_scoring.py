"""The Gauntlet's scoring rules (spore.swarm.scoring), as tables of cases."""

from __future__ import annotations

import math

import pytest

from spore.swarm import scoring
from spore.swarm.scoring import Measurement, PeerState, ScoringParams

P = ScoringParams()


def m(own_after=4.0, random_after=4.5, behind=0, copy_of=None, own_before=5.0, random_before=5.0,
      fit_z=4.0, restates=None) -> Measurement:
    return Measurement(own_before, own_after, random_before, random_after, behind, copy_of, fit_z, restates)


OUTCOMES = {
    # name: (measurement, typical help of the window, combined own-data evidence, expected outcome)
    "trained on its pages, helps elsewhere too": (m(), 0.1, 3.0, +1),
    "helps, but no evidence it fitted its own pages": (m(own_after=4.5, fit_z=0.1), 0.1, 0.1, -1),
    "hurts": (m(own_after=5.5, random_after=5.2), 0.1, 3.0, -1),
    "does nothing (free rider's zeros)": (m(own_after=5.0, random_after=5.0), 0.1, 0.0, -1),
    "helps by chance, far less than trained updates": (m(own_after=4.95, random_after=4.99), 0.1, 3.0, -1),
    "one window behind the shared theta": (m(behind=1), 0.1, 3.0, -1),
    "built on an unknown theta": (m(behind=None), 0.1, 3.0, -1),
    "a copy of an earlier upload": (m(copy_of="ab" * 32), 0.1, 3.0, -1),
    "restates the last aggregate": (m(restates="aggregate of window 3"), 0.1, 3.0, -1),
    "missing or rejected": (None, 0.1, 3.0, -1),
    "loss became infinite": (m(random_after=float("inf")), 0.1, 3.0, -1),
}


@pytest.mark.parametrize("name", OUTCOMES)
def test_window_outcome(name):
    meas, typical, evidence, want = OUTCOMES[name]
    assert scoring.window_outcome(meas, P, typical, evidence) == want


def test_fit_statistic_is_welchs_t_of_relative_row_improvements():
    before = [4.0, 5.0, 6.0, 5.0]
    own_after = [3.6, 4.6, 5.3, 4.4]  # 10%, 8%, 11.7%, 12%
    random_after = [3.9, 4.9, 5.8, 4.9]  # 2.5%, 2%, 3.3%, 2%
    z = scoring.fit_statistic(before, own_after, before, random_after)
    a = [0.1, 0.08, 0.7 / 6, 0.12]
    b = [0.025, 0.02, 0.2 / 6, 0.02]
    import statistics as st

    se = (st.variance(a) / 4 + st.variance(b) / 4) ** 0.5
    assert z == pytest.approx((st.fmean(a) - st.fmean(b)) / se)
    assert scoring.fit_statistic(before, random_after, before, own_after) == pytest.approx(-z)
    assert math.isnan(scoring.fit_statistic(before, [float("inf")] * 4, before, random_after))


def test_a_reference_update_removes_what_every_row_gains():
    """Rows gain very different amounts from any update (easy text gets easier). Subtracting what the
    window's reference update gained on the same row leaves the own-data advantage, which the raw
    comparison drowns."""
    before = [4.0, 5.0, 6.0, 5.0, 4.5, 5.5]
    shared = [0.02, 0.15, 0.05, 0.30, 0.10, 0.01]  # what every update teaches each row
    ref_own = [b * (1 - g) for b, g in zip(before, shared, strict=True)]
    own_after = [b * (1 - g - 0.03) for b, g in zip(before, shared, strict=True)]  # + 3 points on its own rows
    rshared = [0.25, 0.03, 0.12, 0.07, 0.20, 0.04]
    ref_random = [b * (1 - g) for b, g in zip(before, rshared, strict=True)]
    random_after = list(ref_random)
    raw = scoring.fit_statistic(before, own_after, before, random_after)
    paired = scoring.fit_statistic(before, own_after, before, random_after, ref_own, ref_random)
    assert raw < 1.0 < 10.0 < paired
    # an update with no own-data advantage stays near 0 either way
    plain = scoring.fit_statistic(before, ref_own, before, ref_random, ref_own, ref_random)
    assert abs(plain) < 1e-6


def test_own_data_evidence_is_the_mean_of_recent_windows():
    """Measured per-window fit_z (tiny, the attacked network of benchmarks/fairness.py): honest peers
    pass almost every window and every 4-window mean; a peer training on other pages never does."""
    honest = [[7.2, 3.7, 4.3, 4.2, 2.2, 3.1, 0.6, 9.9, 5.5, 4.5], [4.0, 4.6, 9.1, 6.1, 3.4, 6.4, 4.5, 4.9, 8.8, 2.2],
              [5.0, 2.3, 8.4, 8.4, 3.1, 0.2, 7.0, 4.7, 1.9, 2.3], [5.9, 4.8, 3.8, 4.0, 10.0, 1.7, 5.2, 5.7, 3.1, 6.2]]
    off_data = [0.6, 1.4, 0.6, -1.4, 1.3, 1.4, 0.9, 1.1, -2.0, -1.3]

    def passes(zs: list[float]) -> list[bool]:
        hist: list[float] = []
        out = []
        for z in zs:
            hist = [*hist, scoring.clip_fit(z, P)][-P.fit_window :]
            out.append(scoring.fit_evidence(hist, P) > P.fit_z_min)  # type: ignore[operator]
        return out

    assert all(all(passes(h)) for h in honest)
    assert not any(passes(off_data))
    assert scoring.fit_evidence([], P) is None
    assert scoring.clip_fit(float("nan"), P) == -P.fit_clip
    assert scoring.clip_fit(50.0, P) == P.fit_clip


def test_relative_improvements_are_used():
    x = m(own_before=2.0, own_after=1.8, random_before=4.0, random_after=3.7)
    assert x.own_improvement == pytest.approx(0.10) and x.random_improvement == pytest.approx(0.075)
    assert x.gradient_score == x.random_improvement


@pytest.mark.parametrize(
    "ordinal_mu, ema, sync, positive",
    [
        (30.0, 0.5, 1.0, True),
        (30.0, -0.5, 1.0, False),  # negative EMA
        (-5.0, 0.5, 1.0, False),  # negative ordinal
        (-5.0, -0.5, 1.0, False),  # Templar #45/#108: two negatives must not make a positive
        (30.0, 0.5, 0.0, False),  # out of sync
        (30.0, 0.0, 1.0, False),  # never passed a window
    ],
)
def test_final_score_is_positive_only_when_every_factor_is(ordinal_mu, ema, sync, positive):
    st = PeerState(mu=ordinal_mu, sigma=0.0, ema=ema, sync=sync)
    assert (st.final > 0) == positive
    assert st.final >= 0


def test_zero_then_random_never_earns_weight():
    """Templar #108: zero updates (score 0) for a while, then random ones (negative scores)."""
    states: dict[str, PeerState] = {}
    honest = lambda: m(own_after=4.0, random_after=4.4)  # noqa: E731
    for w in range(12):
        cheat = m(own_after=5.0, random_after=5.0) if w < 4 else m(own_after=5.6, random_after=5.7)
        scoring.update_window(states, {"honest": honest(), "cheat": cheat}, P)
        assert states["cheat"].final == 0.0, w
    assert states["cheat"].ema < 0 and states["honest"].final > 0
    assert scoring.gather_list(states, 15) == ["honest"]
    assert scoring.incentive_weights(states, ["honest"]) == {"cheat": 0.0, "honest": 1.0}


def test_rank_order_puts_missing_last_and_ties_together():
    peers, ranks = scoring.rank_order({"a": 0.1, "b": None, "c": 0.3, "d": 0.1})
    assert peers == ["c", "a", "d", "b"] and ranks == [1, 2, 2, 4]


def test_openskill_ranks_consistently_better_peers_higher():
    states: dict[str, PeerState] = {}
    for _ in range(5):
        scoring.update_window(
            states, {"good": m(random_after=4.0, own_after=3.9), "ok": m(random_after=4.6, own_after=4.4)}, P
        )
    assert states["good"].mu > states["ok"].mu and states["good"].final > states["ok"].final > 0


def test_gather_list_takes_the_top_g_with_positive_scores():
    states = {f"p{i}": PeerState(mu=30 + i, sigma=1, ema=0.5, sync=1.0) for i in range(5)}
    states["bad"] = PeerState(mu=99, sigma=1, ema=-0.1, sync=1.0)
    assert scoring.gather_list(states, 3) == ["p4", "p3", "p2"]
    w = scoring.incentive_weights(states, ["p4", "p3", "p2"])
    assert sum(w.values()) == pytest.approx(1.0) and w["bad"] == 0.0 and w["p0"] == 0.0


def test_an_outage_blames_nobody_who_is_missing():
    """Missing peers are rated -1 only when most established peers did submit."""
    established = {p: PeerState(mu=30.0, sigma=1.0, ema=0.5, sync=1.0) for p in ("a", "b", "c")}
    measured = {"a": m()}
    # One established peer submitted, two did not: the window was an outage for them.
    one = scoring.judged_peers(established, {"a", "b", "c"}, {"a"}, {"a"}, measured)
    assert one == {"a": measured["a"]}
    # A Sybil's valid update does not make it anyone's fault either.
    sybil = scoring.judged_peers(established, {"a", "b", "c", "s"}, {"s"}, {"s"}, {"s": m()})
    assert set(sybil) == {"s"}
    # Two of three submitted: the third is simply missing.
    two = scoring.judged_peers(established, {"a", "b", "c"}, {"a", "b"}, {"a", "b"}, {"a": m(), "b": m()})
    assert two["c"] is None and set(two) == {"a", "b", "c"}
    # No valid update at all rates nobody; an unmeasured valid update keeps its standing.
    assert scoring.judged_peers(established, {"a", "b", "c"}, {"a"}, set(), {}) == {}
    assert "b" not in scoring.judged_peers(established, {"a", "b", "c"}, {"a", "b"}, {"a", "b"}, {"a": m()})
