"""The Gauntlet's scoring rules (spec section 3), as pure functions.

Per window, for each peer the validator measures, with the peer's decoded
update applied alone to theta at the evaluation step (scaled by the outer
learning rate), per-row losses on two sets of rows:

    own rows      every row of the batches the peer declared it trained on
                  (the first `steps` of its H assigned batches)
    random rows   as many rows drawn with the window's private randomness

and summarises them as

    own_improvement    = 1 - mean own loss after    / mean own loss before
    random_improvement = 1 - mean random loss after / mean random loss before
    gradient_score     = random_improvement
    fit_z              = Welch's t of per-row residual gains, own rows against
                         random rows (fit_statistic)

A row's gain is its relative improvement 1 - after / before (so pages of
easier or harder text compare fairly); its residual is the gain minus what
the window's reference update (the aggregate of the window's gather list,
or of its helpful updates in the warm-up) gained on the same row, scaled by
a least-squares slope fitted on the random rows.

Outcome of the window, +1 or -1:

    +1  only if the update helps on data it never chose, by at least
        `min_relative` of the window's typical help (the median positive
        gradient score of the window's original updates: a random
        perturbation can lower a loss a little by chance, a trained update
        lowers it by much more); and the evidence that it was fitted to the
        peer's own pages is strong: the mean of the peer's last `fit_window`
        fit_z values, each clipped to +-`fit_clip`, exceeds `fit_z_min`; and
        the peer is in sync; and its update is neither a copy of another
        upload nor a restatement of public information;
    -1  otherwise, and for every missing or rejected submission.

Why a paired, residual comparison. Measured on honest peers
(benchmarks/fairness.py, BENCHMARKS.md): early in training an update mostly
teaches what all text shares, and how much a row gains from that varies
from row to row far more than the own-data advantage does. Comparing raw
gains, own rows against random rows, failed about one honest window in
four (Welch's t below 1; 9 of 41 outcomes -1 in the default run before
that). Subtracting what the reference update gained on the same row removes
the shared part: on the same windows the honest median t rose from 1.8 to
4.6 and its 10th percentile from -0.7 to 2.2. A peer that trains on other
pages than its own gains on its own rows no more than the reference does,
so its t stays near 0 (median 0.8 over 10 windows) while an honest peer's
stays high; averaging over 4 windows separates them further.

The outcome feeds an EMA that starts at 0; the OpenSkill rating ranks the
window's gradient scores (missing and rejected peers tie for last). The
final score is

    final = max(0, ordinal) * max(0, ema) * sync,   ordinal = mu - z * sigma

so a factor that is negative or missing zeroes the score. We take z = 1,
not OpenSkill's default 3: mu - 3 sigma starts at exactly 0 and stays near it
for many windows in a small network, so max(0, .) would drop half of the
honest peers on ranking noise alone. With z = 1 the ordinal stays a
conservative skill estimate while the EMA and sync factors do the gating:
a newcomer's EMA starts at 0, so it earns weight only by passing windows. Templar's issues
#45 and #108 were products of two negatives turning into a large positive
weight ("zero-then-random"); here a negative factor can only ever give 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScoringParams:
    ema_alpha: float = 0.3  # weight of the newest window outcome
    sync_tolerance: int = 1  # windows behind at which sync reaches 0
    # Cosine of two decoded updates that marks a copy, and share of an update explained by the last
    # aggregate that marks a restatement: honest maxima measured in benchmarks/overlap.py (0.172 and
    # 0.188 on tiny) plus a margin of 0.15 (similarity.py).
    copy_threshold: float = 0.33
    restatement_threshold: float = 0.34
    min_relative: float = 0.25  # share of the window's median positive gradient score an update must reach
    ordinal_z: float = 1.0  # ordinal = mu - z * sigma
    gather_size: int = 15
    beta: float = 7.0  # OpenSkill Plackett-Luce, as Templar
    tau: float = 0.1
    fit_window: int = 4  # windows of own-data evidence averaged
    fit_clip: float = 3.0  # one window's fit_z counts at most this much either way
    # Mean clipped fit_z an update needs to pass. Honest peers (benchmarks/fairness.py, tiny, 40 measured
    # windows): per-window fit_z median 4.6, 10th percentile 2.2; the mean of 4 windows fell below 1.5 in
    # under 1% of bootstrap draws, one window in 5%. (An off-data trainer measured 0.8 median, 1.4 max.)
    fit_z_min: float = 1.5


@dataclass
class Measurement:
    """What the validator measured for one valid submission."""

    own_before: float
    own_after: float
    random_before: float
    random_after: float
    behind: int | None  # outer steps behind the shared theta; None: unknown base
    copy_of: str | None = None  # hex id of the earlier uploader this one copied
    fit_z: float = 0.0  # Welch's t, own-row against random-row relative improvements
    restates: str | None = None  # the public object this update mostly restates

    @property
    def own_improvement(self) -> float:
        return 1.0 - self.own_after / self.own_before if self.own_before > 0 else 0.0

    @property
    def random_improvement(self) -> float:
        return 1.0 - self.random_after / self.random_before if self.random_before > 0 else 0.0

    @property
    def gradient_score(self) -> float:
        return self.random_improvement


@dataclass
class PeerState:
    """A peer's standing, carried from window to window (and through the ledger)."""

    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    ema: float = 0.0
    sync: float = 0.0
    windows_in_gather: int = 0
    history: list[float] = field(default_factory=list)  # final score per window
    fit_history: list[float] = field(default_factory=list)  # clipped fit_z of measured windows, newest last

    z: float = 1.0

    @property
    def ordinal(self) -> float:
        return self.mu - self.z * self.sigma

    @property
    def final(self) -> float:
        return max(0.0, self.ordinal) * max(0.0, self.ema) * self.sync


def sync_score(behind: int | None, tolerance: int) -> float:
    """1 when the update was computed from the current theta, falling to 0 at `tolerance` behind."""
    if behind is None or behind < 0:
        return 0.0
    return max(0.0, 1.0 - behind / tolerance) if tolerance > 0 else float(behind == 0)


def typical_help(measurements: Mapping[str, Measurement | None]) -> float:
    """The median positive gradient score of a window's original (non-copied) updates."""
    good = sorted(
        m.gradient_score
        for m in measurements.values()
        if m is not None and m.copy_of is None and m.restates is None
        and math.isfinite(m.gradient_score) and m.gradient_score > 0
    )
    return statistics.median(good) if good else 0.0


def fit_statistic(own_before: Sequence[float], own_after: Sequence[float],
                  random_before: Sequence[float], random_after: Sequence[float],
                  own_ref: Sequence[float] | None = None, random_ref: Sequence[float] | None = None) -> float:
    """Welch's t of per-row residual gains, own rows against random rows.

    A row's gain is its relative loss improvement, 1 - after / before. Most of
    a gain is what every update teaches every row (easy text gets easier),
    and that varies from row to row far more than the own-data advantage.
    So each gain is compared with the gain the window's reference update
    made on the same row (`own_ref`, `random_ref`: losses after it): the
    residual is gain - beta * reference gain, with beta >= 0 fitted on the
    random rows by least squares. Without a reference the residual is the
    gain itself.

    Positive when the update lowered the loss of the peer's own rows by more
    than that of random rows, measured in standard errors. NaN when a loss is
    not finite or positive (a poisoned update), 0.0 when there is no spread.
    """
    def rel(before: Sequence[float], after: Sequence[float]) -> list[float]:
        return [1.0 - a / b for b, a in zip(before, after, strict=True)]

    refs = [*(own_ref if own_ref is not None else []), *(random_ref if random_ref is not None else [])]
    losses = [*own_before, *own_after, *random_before, *random_after, *refs]
    if not all(math.isfinite(x) for x in losses) or min(own_before, default=0) <= 0 \
            or min(random_before, default=0) <= 0 or len(own_before) < 2 or len(random_before) < 2:
        return float("nan")
    a, b = rel(own_before, own_after), rel(random_before, random_after)
    if own_ref is not None and random_ref is not None:
        ra, rb = rel(own_before, own_ref), rel(random_before, random_ref)
        beta = max(0.0, _slope(rb, b))
        a = [x - beta * r for x, r in zip(a, ra, strict=True)]
        b = [x - beta * r for x, r in zip(b, rb, strict=True)]
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    diff = statistics.fmean(a) - statistics.fmean(b)
    if se == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(float("inf"), diff)
    return diff / se


def _slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y on x (0.0 when x does not vary)."""
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = math.fsum((u - mx) ** 2 for u in x)
    return math.fsum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / sxx if sxx > 0 else 0.0


def fit_evidence(history: Sequence[float], params: ScoringParams) -> float | None:
    """The mean of the peer's last `fit_window` clipped fit_z values (None before any)."""
    recent = list(history)[-params.fit_window :]
    return statistics.fmean(recent) if recent else None


def clip_fit(z: float, params: ScoringParams) -> float:
    return max(-params.fit_clip, min(params.fit_clip, z)) if not math.isnan(z) else -params.fit_clip


def window_outcome(
    m: Measurement | None, params: ScoringParams, typical: float = 0.0, evidence: float | None = 0.0
) -> float:
    """+1 or -1 for one window; `evidence` is fit_evidence including this window's fit_z
    (None: the peer's first measured window, no fit requirement)."""
    if m is None or m.copy_of is not None or m.restates is not None:
        return -1.0
    if sync_score(m.behind, params.sync_tolerance) == 0.0:
        return -1.0
    if not all(math.isfinite(x) for x in (m.own_before, m.own_after, m.random_before, m.random_after)):
        return -1.0
    helps = m.gradient_score > 0 and m.gradient_score >= params.min_relative * typical
    fitted = evidence is not None and evidence > params.fit_z_min
    return 1.0 if helps and fitted else -1.0


def rank_order(gradient_scores: Mapping[str, float | None]) -> tuple[list[str], list[int]]:
    """Peers and their ranks (1 = best) for one OpenSkill match; None scores tie for last."""
    peers = sorted(gradient_scores, key=lambda p: (gradient_scores[p] is None, -(gradient_scores[p] or 0.0), p))
    ranks: list[int] = []
    for i, p in enumerate(peers):
        s = gradient_scores[p]
        if i and s == gradient_scores[peers[i - 1]]:
            ranks.append(ranks[-1])
        else:
            ranks.append(i + 1)
    return peers, ranks


def update_window(
    states: dict[str, PeerState],
    measurements: Mapping[str, Measurement | None],
    params: ScoringParams,
) -> None:
    """Fold one window's measurements into every peer's state (in place).

    `measurements` maps every peer that took part (or was expected) to its
    measurement, or None when it was missing or rejected.
    """
    from openskill.models import PlackettLuce

    if not measurements:
        return
    for p in measurements:
        states.setdefault(p, PeerState(z=params.ordinal_z))
    scores: dict[str, float | None] = {}
    typical = typical_help(measurements)
    for p, m in measurements.items():
        st = states[p]
        if m is not None and m.copy_of is None and m.restates is None:
            st.fit_history = [*st.fit_history, clip_fit(m.fit_z, params)][-params.fit_window :]
        outcome = window_outcome(m, params, typical, fit_evidence(st.fit_history, params))
        st.ema = (1 - params.ema_alpha) * st.ema + params.ema_alpha * outcome
        original = m is not None and m.copy_of is None and m.restates is None
        st.sync = sync_score(m.behind, params.sync_tolerance) if original and m is not None else 0.0
        scores[p] = _finite(m.gradient_score) if original and m is not None else None
    if len(scores) >= 2:
        model = PlackettLuce(beta=params.beta, tau=params.tau)
        order, ranks = rank_order(scores)
        teams = [[model.create_rating([states[p].mu, states[p].sigma], name=p)] for p in order]
        rated = model.rate(teams, ranks=ranks)
        for p, team in zip(order, rated, strict=True):
            states[p].mu, states[p].sigma = team[0].mu, team[0].sigma
    for p in measurements:
        states[p].history.append(states[p].final)


def judged_peers(
    states: Mapping[str, PeerState],
    known: set[str],
    submitted: set[str],
    valid: set[str],
    measurements: Mapping[str, Measurement],
) -> dict[str, Measurement | None]:
    """Who a window rates, and with what (None: missing or rejected, outcome -1).

    Measured peers are rated; valid updates left unmeasured keep their standing.
    Known peers that sent nothing valid are rated as missing, unless the window
    was an outage: no valid update at all, or fewer than half of the peers that
    were established before it (positive final score) submitted anything (the
    validator restarting, the store unreachable). A few updates from newcomers
    or Sybils cannot turn an outage into everyone else's fault.
    """
    if not valid:
        return {}
    established = {p for p, st in states.items() if st.final > 0}
    outage = 2 * len(established & submitted) < len(established)
    unmeasured = valid - set(measurements)
    judged: dict[str, Measurement | None] = {}
    for p in sorted(known - unmeasured):
        if p in measurements:
            judged[p] = measurements[p]
        elif not outage:
            judged[p] = None
    return judged


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def gather_list(states: Mapping[str, PeerState], size: int) -> list[str]:
    """The top `size` peers by final score; only peers with a positive score qualify."""
    ranked = sorted((p for p in states if states[p].final > 0), key=lambda p: (-states[p].final, p))
    return ranked[:size]


def helpful_updates(measurements: Mapping[str, Measurement | None], params: ScoringParams) -> list[str]:
    """Original, in-sync updates that help on random rows by at least `min_relative` of the
    window's typical help, best first."""
    typical = typical_help(measurements)
    good = [
        p for p, m in measurements.items()
        if m is not None and m.copy_of is None and m.restates is None
        and sync_score(m.behind, params.sync_tolerance) > 0 and math.isfinite(m.gradient_score)
        and m.gradient_score > 0 and m.gradient_score >= params.min_relative * typical
    ]
    return sorted(good, key=lambda p: (-measurements[p].gradient_score, p))  # type: ignore[union-attr]


def warmup_gather_list(measurements: Mapping[str, Measurement | None], params: ScoringParams) -> list[str]:
    """G(w) for a warm-up window, decided from that window's own measurements (nobody is
    rated yet): up to `gather_size` helpful updates (`helpful_updates`) whose own-data
    evidence of this window alone exceeds `fit_z_min`, best first. A flood of junk in the
    first windows is measured out of the aggregate instead of being averaged into it."""
    good = [p for p in helpful_updates(measurements, params)
            if clip_fit(measurements[p].fit_z, params) > params.fit_z_min]  # type: ignore[union-attr]
    return sorted(good[: params.gather_size])


def incentive_weights(states: Mapping[str, PeerState], gathered: Sequence[str]) -> dict[str, float]:
    """Shares proportional to final score within the gather list; everyone else 0."""
    total = sum(states[p].final for p in gathered)
    return {p: (states[p].final / total if p in gathered and total > 0 else 0.0) for p in sorted(states)}
