"""The validator (Gauntlet): decides, window by window, whose updates everyone applies.

Per window w, after its submissions are final (spec section 3):

    gather   every submission, rejecting (with a reason) what is invalid
    measure  each valid update on theta(w): loss before/after on the peer's own
             assigned batch and on a random batch; how far behind its base is;
             whether its kept positions copy an earlier upload
    apply    theta(w+1) = theta(w) - alpha * Aggregate(submissions on gather list G(w))
    rate     fold the window into each peer's EMA and OpenSkill rating (scoring.py)
    publish  G(w+1) and the weights, signed; the window's record, to the store and
             to the hash-chained ledger; a checkpoint every K windows

The rules live in scoring.py; this file only moves data between the store,
the model and the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spore import model as M
from spore.data import Corpus, eval_batches, peer_batches, random_batch
from spore.swarm import codec, scoring, wire
from spore.swarm.identity import Identity
from spore.swarm.ledger import SQLiteLedger
from spore.swarm.protocol import (
    MAX_JSON_BYTES,
    RUN_KEY,
    ProtocolError,
    RunManifest,
    checkpoint_keys,
    gather_key,
    open_json,
    record_key,
    sign_json,
    sleep_until,
)
from spore.swarm.replica import Gathered, Replica, Submission
from spore.swarm.store import Store

log = logging.getLogger("spore.swarm.validator")

LEDGER_FILE = "ledger.sqlite"


def new_manifest(
    identity: Identity,
    preset: M.Preset,
    *,
    windows: int,
    window_seconds: float,
    grace_seconds: float,
    corpus_digest: str,
    aggregation: str = "all",
    outer_lr: float | None = None,
    warmup_windows: int = 2,
    gather_size: int = 15,
    index_coding: int = wire.ELIAS_FANO,
) -> RunManifest:
    train = preset.train if outer_lr is None else replace(preset.train, outer_lr=outer_lr)
    return RunManifest(
        run_id=secrets.token_hex(8),
        validator=identity.hex,
        t0=0.0,  # set when the run opens
        window_seconds=window_seconds,
        grace_seconds=grace_seconds,
        windows=windows,
        preset=preset.name,
        model=preset.model,
        train=train,
        codec=codec.CodecParams(topk=train.topk, chunk=train.chunk, block=int(train.chunk**0.5)),
        index_coding=index_coding,
        run_seed=secrets.token_hex(16),
        corpus_digest=corpus_digest,
        checkpoint_every=preset.checkpoint_every,
        aggregation=aggregation,
        warmup_windows=warmup_windows,
        gather_size=gather_size,
    )


def announced_peers(store: Store) -> set[str]:
    """Ids of peers with a valid signed announcement under their own key."""
    out = set()
    for info in store.list("peers/"):
        try:
            body, who = open_json(store.get(info.key, MAX_JSON_BYTES))
        except Exception:  # unreadable or forged announcements do not count
            continue
        if info.key == f"peers/{who.hex()}.json" and body.get("peer") == who.hex():
            out.add(who.hex())
    return out


class Validator:
    def __init__(
        self,
        store: Store,
        identity: Identity,
        manifest: RunManifest,
        out: Path,
        corpus: Corpus | None = None,
        params: scoring.ScoringParams | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.manifest = manifest
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.replica = Replica(store, manifest, corpus)
        self.params = params or scoring.ScoringParams(gather_size=manifest.gather_size)
        t = manifest.train
        self.eval_set = eval_batches(self.replica.corpus, t.eval_sequences, t.seq_len, t.batch_size)
        self.ledger = SQLiteLedger(out / LEDGER_FILE, identity)
        self.states: dict[str, scoring.PeerState] = {}
        self.known: set[str] = set()  # peers that ever submitted: missing a window counts against them
        self.theta_history: dict[str, int] = {}  # theta digest -> window it starts
        # Private randomness for the random batches: peers cannot predict them.
        self.secret = secrets.token_bytes(32)
        self.score_rows = 32  # rows of own and of random data each update is measured on
        self.score_budget = 0.6 * manifest.window_seconds  # seconds of measuring per window
        self.seconds_per_score: float | None = None  # running estimate of one update's cost

    # -- opening and resuming ----------------------------------------------------

    @classmethod
    def open_run(
        cls,
        store: Store,
        identity: Identity,
        manifest: RunManifest,
        out: Path,
        corpus: Corpus | None = None,
        *,
        min_peers: int = 0,
        wait_seconds: float = 120.0,
        lead_seconds: float = 1.0,
    ) -> Validator:
        """Publish checkpoint 0 and the manifest; window 0 opens once `min_peers` announced."""
        if store.head(RUN_KEY) is not None:
            raise ProtocolError(f"{store.url} already holds a run; use a fresh store or --resume")
        if (out / LEDGER_FILE).exists():
            raise ProtocolError(f"{out / LEDGER_FILE} exists; use a fresh --out or --resume")
        v = cls(store, identity, manifest, out, corpus)
        v.replica.window = 0
        v.replica.publish_checkpoint(identity)
        v.theta_history[v.replica.digest().hex()] = 0
        initial = M.eval_loss(v.replica.model, v.eval_set)
        deadline = time.time() + wait_seconds
        while len(announced_peers(store)) < min_peers:
            if time.time() > deadline:
                log.warning("only %d of %d peers announced; starting anyway", len(announced_peers(store)), min_peers)
                break
            time.sleep(0.2)
        v.manifest = replace(
            manifest, t0=time.time() + lead_seconds, extra={**manifest.extra, "initial_eval_loss": initial}
        )
        v.replica.manifest = v.manifest
        doc = v.manifest.to_json()
        v.ledger.append("genesis", None, {"manifest": doc, "checkpoint": v.checkpoint_entry(0)})
        store.put(RUN_KEY, sign_json(doc, identity))
        log.info("run %s opened: %d windows of %.1fs", v.manifest.run_id, v.manifest.windows, v.manifest.window_seconds)
        return v

    @classmethod
    def resume(cls, store: Store, identity: Identity, out: Path, corpus: Corpus | None = None) -> Validator:
        """Continue a run this key opened: history from the ledger, theta by replay."""
        from spore.swarm.replica import fetch_manifest

        manifest = fetch_manifest(store, identity.id)
        if not (out / LEDGER_FILE).exists():
            raise ProtocolError(f"no ledger at {out / LEDGER_FILE} to resume from")
        v = cls(store, identity, manifest, out, corpus)
        last = v.ledger.last("window")
        v.replica.catch_up(0 if last is None else last.window + 1)  # type: ignore[operator]
        for r in v.ledger.records():
            if r.kind == "genesis":
                v.theta_history[r.body["checkpoint"]["theta"]] = 0
            elif r.kind == "window":
                v.theta_history[r.body["theta"]] = r.window + 1  # type: ignore[operator]
                v.known.update(r.body.get("known", []))
                v.states = {p: scoring.PeerState(**s["state"]) for p, s in r.body.get("ratings", {}).items()}
        if v.replica.digest().hex() not in v.theta_history:
            raise ProtocolError("replayed theta does not match the ledger; refusing to continue")
        log.info("resumed at window %d with %d rated peers", v.replica.window, len(v.states))
        return v

    # -- one window ---------------------------------------------------------------

    def checkpoint_entry(self, window: int) -> dict[str, Any]:
        _, manifest_key = checkpoint_keys(window)
        body, _ = open_json(self.store.get(manifest_key, MAX_JSON_BYTES), signer=self.identity.id)
        return {"window": window, "sha256": body["sha256"], "theta": body["theta"]}

    def _seed(self, window: int, what: bytes) -> bytes:
        return hmac.new(self.secret, what + window.to_bytes(8, "little"), hashlib.sha256).digest()

    def sample(self, window: int, g: Gathered) -> list[Submission]:
        """The valid submissions to measure this window: all that fit the time budget.

        Measuring costs a few forward passes per update; when more peers submit
        than `score_budget` seconds allow (at the cost per update seen so far),
        a sample drawn with private randomness is measured and the rest keep
        their standing for this window (spec section 3: "for a sample of peers").
        """
        if self.seconds_per_score is None:
            return list(g.accepted)
        fits = max(1, int(self.score_budget / self.seconds_per_score))
        if len(g.accepted) <= fits:
            return list(g.accepted)
        rng = np.random.default_rng(np.frombuffer(self._seed(window, b"sample"), dtype=np.uint64))
        chosen = sorted(rng.choice(len(g.accepted), size=fits, replace=False))
        return [g.accepted[i] for i in chosen]

    def measure(self, window: int, g: Gathered) -> dict[str, scoring.Measurement]:
        """Loss before/after each sampled valid update, on its own rows and on random rows;
        how far behind its base is; and, for every valid update, whether it copies another."""
        m, rep, t = self.manifest, self.replica, self.manifest.train
        if not g.accepted:
            return {}
        # The own rows are drawn from every row the peer was assigned this window (the
        # update should fit them best); the random rows are as many, from private randomness.
        rows = min(t.inner_steps * t.batch_size, self.score_rows)
        rand = random_batch(rep.corpus, self._seed(window, b"random"), rows, t.seq_len)
        pick = np.random.default_rng(np.frombuffer(self._seed(window, b"rows"), dtype=np.uint64)).choice(
            t.inner_steps * t.batch_size, size=rows, replace=False
        )
        theta = [p.detach().clone() for p in rep.params()]
        rep.model.eval()
        out: dict[str, scoring.Measurement] = {}
        sampled = self.sample(window, g)
        started = time.perf_counter()
        with torch.no_grad():
            random_before = float(M.lm_loss(rep.model, rand))
            for s in sampled:
                assigned = peer_batches(
                    rep.corpus, bytes.fromhex(m.run_seed), s.peer, window, t.inner_steps, t.batch_size, t.seq_len
                )
                own = assigned.reshape(-1, t.seq_len + 1)[pick]
                own_before = float(M.lm_loss(rep.model, own))
                for p, u in zip(rep.params(), s.update, strict=True):
                    p.sub_(codec.decompress(u, m.codec), alpha=t.outer_lr)
                own_after = float(M.lm_loss(rep.model, own))
                random_after = float(M.lm_loss(rep.model, rand))
                for p, p0 in zip(rep.params(), theta, strict=True):
                    p.copy_(p0)
                out[s.peer.hex()] = scoring.Measurement(
                    own_before, own_after, random_before, random_after, self.behind(window, s)
                )
        if sampled:
            cost = (time.perf_counter() - started) / len(sampled)
            prev = self.seconds_per_score
            self.seconds_per_score = cost if prev is None else 0.5 * prev + 0.5 * cost
        copies = scoring.find_copies(
            {s.peer.hex(): kept_positions(s) for s in g.accepted},
            {s.peer.hex(): s.modified for s in g.accepted},
            [pl.numel for pl in rep.plans],
            self.params.copy_threshold,
        )
        nan = float("nan")
        for s in g.accepted:
            offender = s.peer.hex()
            if offender in copies:  # a copy fails its window whether or not it was measured
                out.setdefault(offender, scoring.Measurement(nan, nan, nan, nan, self.behind(window, s)))
                out[offender].copy_of = copies[offender]
        return out

    def behind(self, window: int, s: Submission) -> int | None:
        """Outer steps between the theta the update was computed from and theta(window)."""
        base = s.header.base_digest.hex()
        return window - self.theta_history[base] if base in self.theta_history else None

    def publish_gather_list(self, window: int) -> list[str] | None:
        """Publish G(window) from the ratings so far; None during the warm-up.

        A list already in the store (published before a crash) is kept: peers
        may have used it, and everyone must aggregate the same updates.
        """
        m = self.manifest
        if window < m.warmup_windows or window >= m.windows:
            return None
        try:
            existing = self.replica.gather_list(window)
        except TimeoutError:
            existing = None
        if existing is not None:
            return sorted(p.hex() for p in existing)
        chosen = scoring.gather_list(self.states, self.params.gather_size)
        weights = scoring.incentive_weights(self.states, chosen)
        body = {"window": window, "peers": chosen, "weights": weights, "rated_through": window - 1}
        self.store.put(gather_key(window), sign_json(body, self.identity))
        return chosen

    def step(self) -> dict[str, Any]:
        """Validate the replica's current window and move theta forward."""
        m, rep = self.manifest, self.replica
        w = rep.window
        sleep_until(m.gather_time(w))
        g = rep.gather(w)  # every valid submission, for scoring and the record
        t_start = time.time()
        measured = self.measure(w, g)
        measure_seconds = time.time() - t_start

        # theta(w+1): the same aggregate every peer computes, under G(w).
        allowed = rep.gather_list(w)
        used = Gathered(w, [s for s in g.accepted if allowed is None or s.peer in allowed], g.rejected)
        rep.apply(used)
        self.theta_history[rep.digest().hex()] = rep.window

        # Rate every peer that submitted (valid or not) or ever did. A window with no
        # valid submission at all is an outage (e.g. this validator restarting), not
        # every peer's fault: it rates nobody.
        submitters = {s.peer.hex() for s in g.accepted} | {r.peer for r in g.rejected if r.peer}
        self.known |= submitters
        rated = bool(g.accepted)
        if rated:
            # Measured peers, plus known peers that sent nothing valid; valid updates
            # left out of this window's sample keep their standing.
            unmeasured = {s.peer.hex() for s in g.accepted} - set(measured)
            judged = {p: measured.get(p) for p in sorted(self.known - unmeasured)}
            scoring.update_window(self.states, judged, self.params)
        typical = scoring.typical_help(measured)
        for s in used.accepted:
            self.states[s.peer.hex()].windows_in_gather += 1
        nxt = self.publish_gather_list(w + 1)
        # Incentive shares follow the standing after this window (also after the last one).
        weights = scoring.incentive_weights(self.states, scoring.gather_list(self.states, self.params.gather_size))

        loss = M.eval_loss(rep.model, self.eval_set)
        checkpoint = None
        if rep.window % m.checkpoint_every == 0 or rep.window == m.windows:
            rep.publish_checkpoint(self.identity)
            checkpoint = self.checkpoint_entry(rep.window)
        record = {
            "window": w,
            "submissions": [submission_entry(s) for s in g.accepted],
            "rejected": [asdict(r) for r in g.rejected],
            "gather": None if allowed is None else sorted(p.hex() for p in allowed),
            "aggregated": [s.peer.hex() for s in used.accepted],
            "scores": {p: measurement_entry(x, self.params, typical) for p, x in sorted(measured.items())},
            "ratings": {p: rating_entry(st) for p, st in sorted(self.states.items())},
            "known": sorted(self.known),
            "rated": rated,
            "gather_next": nxt,
            "weights": weights,
            "theta": rep.digest().hex(),  # theta at the start of window w + 1
            "checkpoint": checkpoint,
            "eval_loss": loss,
            "measure_seconds": measure_seconds,
            "measured": len(measured),
            "time": time.time(),
        }
        self.ledger.append("window", w, record)
        self.store.put(record_key(w), sign_json(record, self.identity))
        log.info(
            "window %d: %d accepted, %d rejected, gather next %s, eval loss %.4f (scored in %.2fs)",
            w, len(g.accepted), len(g.rejected), "all" if nxt is None else len(nxt), loss, measure_seconds,
        )
        return record

    def run(self, stop_after: int | None = None) -> None:
        """Validate until the run's last window (or `stop_after` windows, for tests)."""
        done = 0
        while self.replica.window < self.manifest.windows:
            self.step()
            done += 1
            if stop_after is not None and done >= stop_after:
                return
        M.save_pretrained(self.replica.model, self.out / "final_model")
        self.ledger.close()


def kept_positions(s: Submission) -> list[set[int]]:
    """Per tensor, the kept positions as chunk * chunk_size + position."""
    size = s.header.params.chunk
    out = []
    for u in s.update:
        if u.plan.mode == codec.DENSE or u.indices is None:
            out.append(set())
            continue
        flat = (np.arange(u.indices.shape[0])[:, None] * size + u.indices.numpy()).reshape(-1)
        if u.tail_indices is not None and u.tail_indices.numel():
            flat = np.concatenate([flat, u.plan.full_chunks * size + u.tail_indices.numpy().reshape(-1)])
        out.append(set(flat.tolist()))
    return out


def submission_entry(s: Submission) -> dict[str, Any]:
    return {"peer": s.peer.hex(), "key": s.key, "sha256": s.digest, "bytes": s.size,
            "stored_at": s.modified, "base": s.header.base_digest.hex()}


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None  # a poisoned update can make a loss infinite


def measurement_entry(x: scoring.Measurement, params: scoring.ScoringParams, typical: float) -> dict[str, Any]:
    return {
        "own_before": _json_float(x.own_before), "own_after": _json_float(x.own_after),
        "random_before": _json_float(x.random_before), "random_after": _json_float(x.random_after),
        "gradient_score": _json_float(x.gradient_score), "behind": x.behind, "copy_of": x.copy_of,
        "sync": scoring.sync_score(x.behind, params.sync_tolerance),
        "outcome": scoring.window_outcome(x, params, typical),
    }


def rating_entry(st: scoring.PeerState) -> dict[str, Any]:
    return {"ordinal": st.ordinal, "ema": st.ema, "sync": st.sync, "final": st.final, "state": asdict(st)}
