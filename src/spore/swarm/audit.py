"""`spore ledger audit`: recompute every decision of a validator from the store and its ledger.

A validator's records claim, window by window, what it accepted and
rejected, what it measured, the outcomes, ratings, gather lists and
weights, and the theta that resulted. Nothing here trusts those claims.
Starting from the genesis record and checkpoint 0 it replays the run:

    randomness   the revealed link follows the manifest's commitment (randomness.py)
    gather       listing and decoding the store again gives the same accepted
                 updates (by digest) and the same rejections (by key and reason)
    screen       each update's first-order gain on the window's random rows
                 matches (within `SCREEN_TOLERANCE`), and the measured peers
                 are the first ones of `measurement_order` under it
    measure      per-row losses recomputed on the replayed theta match the
                 recorded ones (within `LOSS_TOLERANCE`: float kernels differ
                 in the last bits between CPUs), copies and restatements too
    rate         outcomes, EMA, OpenSkill ratings, the gather list for the next
                 window and the weights follow exactly from the recorded numbers
    apply        the aggregate of the gathered updates gives the recorded theta

and stops at the first record that does not match, naming it and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from spore.data import Corpus
from spore.swarm import randomness, scoring
from spore.swarm.protocol import RunManifest
from spore.swarm.replica import Gathered, Replica, Submission
from spore.swarm.store import Store

LOSS_TOLERANCE = 1e-4  # relative, on mean losses
FIT_TOLERANCE = 1e-2  # absolute, on fit_z
SCREEN_TOLERANCE = 1e-3  # relative, on screening scores


@dataclass(frozen=True)
class AuditResult:
    ok: bool
    windows: int  # windows checked (all of them when ok)
    window: int | None = None  # the first window whose record does not match
    field: str = ""
    problem: str = ""

    def describe(self) -> str:
        if self.ok:
            tail = f" ({self.problem})" if self.problem else ""
            return (f"audit OK: {self.windows} windows recomputed from the store and the ledger; "
                    f"every decision matches{tail}")
        where = "genesis" if self.window is None else f"window {self.window}"
        return f"audit FAILED at the record of {where}, field {self.field!r}: {self.problem}"


class Mismatch(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def audit(
    store: Store, genesis: dict[str, Any], records: Iterable[dict[str, Any]], corpus: Corpus | None = None
) -> AuditResult:
    """Replay the run from `genesis` (the ledger's first body) and the window `records` in order."""
    try:
        manifest = RunManifest.from_json(genesis["manifest"])
        params = scoring.ScoringParams(**genesis.get("scoring", {"gather_size": manifest.gather_size}))
        rep = Replica(store, manifest, corpus)
        rep.load_checkpoint(0)
        if rep.digest().hex() != genesis["checkpoint"]["theta"]:
            return AuditResult(False, 0, None, "checkpoint", "checkpoint 0 does not hold the genesis theta")
    except Exception as e:
        return AuditResult(False, 0, None, "manifest", f"cannot start the replay: {e}")
    state = _State(manifest, params, rep)
    checked = 0
    for record in records:
        w = record.get("window")
        try:
            if w != rep.window:
                raise Mismatch("window", f"expected the record of window {rep.window}, found {w}")
            state.check_window(record)
        except Mismatch as e:
            return AuditResult(False, checked, w, e.field, e.problem)
        checked += 1
    if checked < manifest.windows:
        return AuditResult(True, checked, None, "", f"the run is not finished: {checked} of {manifest.windows}")
    return AuditResult(True, checked)


class _State:
    """What a validator carries from window to window, rebuilt from scratch."""

    def __init__(self, manifest: RunManifest, params: scoring.ScoringParams, rep: Replica) -> None:
        self.m, self.params, self.rep = manifest, params, rep
        self.commit = bytes.fromhex(manifest.randomness_commit) if manifest.randomness_commit else b""
        self.prev_link: bytes | None = None
        self.states: dict[str, scoring.PeerState] = {}
        self.known: set[str] = set()
        self.theta_history = {rep.digest().hex(): 0}
        self.next_gather: list[str] | None = None
        self.history: list[list[Submission]] = []

    def check_window(self, r: dict[str, Any]) -> None:
        from spore.swarm import validator as V

        w, m, rep = r["window"], self.m, self.rep
        link = _hex(r.get("randomness"), "randomness")
        if not randomness.verify_link(link, w, self.commit, self.prev_link):
            raise Mismatch("randomness", "the revealed randomness does not follow the committed chain")

        # gather: the same valid updates, the same rejections
        g = rep.gather(w)
        _same("submissions", [(s["peer"], s["sha256"]) for s in r["submissions"]],
              [(s.peer.hex(), s.digest) for s in g.accepted])
        _same("rejected", sorted((x["key"], x["reason"]) for x in r["rejected"]),
              sorted((x.key, x.reason) for x in g.rejected))

        # screen and sample: which updates were measured, in the committed order
        rand = V.measurement_rows(rep.corpus, m, link)
        screen = V.screen_scores(rep, g.accepted, rand) if g.accepted else {}
        recorded_screen = {p: _nan(x) for p, x in r.get("screen", {}).items()}
        _same("screen (who was screened)", sorted(recorded_screen), sorted(screen))
        for p, x in sorted(screen.items()):
            y = recorded_screen[p]
            if not (math.isnan(x) and math.isnan(y)) and not math.isclose(x, y, rel_tol=SCREEN_TOLERANCE, abs_tol=1e-9):
                raise Mismatch(f"screen.{p[:16]}", f"recorded {y!r}, recomputed {x!r}")
        copies = V.find_copies(g, rep, self.params, link, [x for h in self.history for x in h])
        restated = V.find_restatements(g, rep, self.params)
        order = V.measurement_order(g.accepted, self.states, recorded_screen, {**restated, **copies}, link)
        sampled = order[: len(r["sampled"])]
        _same("sampled", r["sampled"], sorted(s.peer.hex() for s in sampled))

        # measure: recompute, compare within tolerance, then continue from the recorded numbers
        recorded = {p: _measurement(x) for p, x in r["scores"].items()}
        recomputed, reference = self.measure(w, g, sampled, link, copies, restated)
        _same("reference", r.get("reference", []), reference)
        _same("scores (who was scored)", sorted(recorded), sorted(recomputed))
        for p in sorted(recomputed):
            _close(f"scores.{p[:16]}", recorded[p], recomputed[p])

        # rate, exactly as the validator does
        submitters = {s.peer.hex() for s in g.accepted} | {x.peer for x in g.rejected if x.peer}
        self.known |= submitters
        judged = scoring.judged_peers(self.states, self.known, submitters, {s.peer.hex() for s in g.accepted},
                                      recorded)
        scoring.update_window(self.states, judged, self.params)
        allowed = scoring.warmup_gather_list(recorded, self.params) if w < m.warmup_windows else self.next_gather
        _same("gather", r.get("gather"), allowed)
        used = Gathered(w, [s for s in g.accepted if allowed is None or s.peer.hex() in allowed], [])
        _same("aggregated", r["aggregated"], [s.peer.hex() for s in used.accepted])
        for s in used.accepted:
            self.states.setdefault(s.peer.hex(), scoring.PeerState(z=self.params.ordinal_z)).windows_in_gather += 1
        nxt = None
        if m.warmup_windows <= w + 1 < m.windows:
            nxt = scoring.gather_list(self.states, self.params.gather_size)
        _same("gather_next", r.get("gather_next"), nxt)
        self.next_gather = nxt
        for p, st in sorted(self.states.items()):
            got = r["ratings"].get(p, {}).get("state")
            if got is None or not _states_equal(got, asdict(st)):
                raise Mismatch(f"ratings.{p[:16]}", f"recorded {got}, recomputed {asdict(st)}")
        _same("ratings (who is rated)", sorted(r["ratings"]), sorted(self.states))
        weights = scoring.incentive_weights(self.states, scoring.gather_list(self.states, self.params.gather_size))
        for p, x in weights.items():
            if not math.isclose(r["weights"].get(p, -1.0), x, rel_tol=1e-12, abs_tol=1e-15):
                raise Mismatch(f"weights.{p[:16]}", f"recorded {r['weights'].get(p)}, recomputed {x}")

        # apply: the aggregate gives the recorded theta
        rep.apply(used)
        theta = rep.digest().hex()
        if theta != r["theta"]:
            raise Mismatch("theta", f"applying the gathered updates gives {theta[:16]}, recorded {r['theta'][:16]}")
        self.theta_history[theta] = rep.window
        self.prev_link = link
        self.history = [*self.history, list(g.accepted)][-V.REPLAY_WINDOWS:]

    def measure(
        self, w: int, g: Gathered, sampled: list[Submission], link: bytes, copies: dict[str, str],
        restated: dict[str, str],
    ) -> tuple[dict[str, scoring.Measurement], list[str]]:
        from spore.swarm import validator as V

        if not g.accepted:
            return {}, []
        allowed = self.next_gather if w >= self.m.warmup_windows else None
        out, reference = V.measure_updates(self.rep, self.m, sampled, link, g, allowed, self.params,
                                           lambda _: True, lambda s: self.behind(w, s))
        V.mark_unoriginal(out, g, copies, restated, lambda s: self.behind(w, s), self.params.sync_tolerance)
        return out, reference

    def behind(self, w: int, s: Submission) -> int | None:
        base = s.header.base_digest.hex()
        return w - self.theta_history[base] if base in self.theta_history else None


def _hex(x: Any, field: str) -> bytes:
    try:
        return bytes.fromhex(x)
    except (TypeError, ValueError):
        raise Mismatch(field, f"{x!r} is not hex") from None


def _same(field: str, recorded: Any, recomputed: Any) -> None:
    if recorded == recomputed:
        return
    if isinstance(recorded, list) and isinstance(recomputed, list):
        a, b = set(map(_key, recorded)), set(map(_key, recomputed))
        if a != b:
            raise Mismatch(field, f"the store holds {_short(sorted(b - a))} that the record omits; "
                                  f"the record holds {_short(sorted(a - b))} that the store does not give")
    raise Mismatch(field, f"recorded {_short(recorded)}, recomputed {_short(recomputed)}")


def _key(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 300 else text[:297] + "..."


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _measurement(x: dict[str, Any]) -> scoring.Measurement:
    return scoring.Measurement(
        _nan(x["own_before"]), _nan(x["own_after"]), _nan(x["random_before"]), _nan(x["random_after"]),
        x["behind"], x.get("copy_of"), _nan(x.get("fit_z", 0.0)), x.get("restates"),
    )


def _close(field: str, a: scoring.Measurement, b: scoring.Measurement) -> None:
    for name in ("own_before", "own_after", "random_before", "random_after"):
        x, y = getattr(a, name), getattr(b, name)
        if not (math.isnan(x) and math.isnan(y)) and not math.isclose(x, y, rel_tol=LOSS_TOLERANCE):
            raise Mismatch(f"{field}.{name}", f"recorded {x!r}, recomputed {y!r}")
    if not (math.isnan(a.fit_z) and math.isnan(b.fit_z)) and not (
        math.isinf(a.fit_z) and a.fit_z == b.fit_z
    ) and not abs(a.fit_z - b.fit_z) <= FIT_TOLERANCE:
        raise Mismatch(f"{field}.fit_z", f"recorded {a.fit_z!r}, recomputed {b.fit_z!r}")
    for name in ("behind", "copy_of", "restates"):
        if getattr(a, name) != getattr(b, name):
            raise Mismatch(f"{field}.{name}", f"recorded {getattr(a, name)!r}, recomputed {getattr(b, name)!r}")


def _states_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            if not all(math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-12) for p, q in zip(x, y, strict=True)):
                return False
        elif isinstance(x, float) or isinstance(y, float):
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True
