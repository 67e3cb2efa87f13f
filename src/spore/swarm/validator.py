"""The validator (Gauntlet): decides, window by window, whose updates everyone applies.

Per window w, after its submissions are final (spec section 3):

    gather   every submission, rejecting (with a reason) what is invalid
    measure  each valid update on theta(w): per-row losses before/after on the
             rows the peer trained on and on random rows; how far behind its
             base is; whether it copies another upload or restates public data
    apply    theta(w+1) = theta(w) - alpha * Aggregate(submissions on gather list G(w));
             G(w) was published before the window from the ratings, except in
             the warm-up windows, where it is decided from the window's own
             measurements and published after them
    rate     fold the window into each peer's EMA and OpenSkill rating (scoring.py)
    publish  G(w+1) and the weights, signed; the window's record, to the store and
             to the hash-chained ledger; a checkpoint every K windows

The rules live in scoring.py; this file only moves data between the store,
the model and the ledger.

Randomness is committed before it is used: the manifest holds the head of a
hash chain (randomness.py), each window's record reveals that window's link,
and everything private about a window (its random rows, which peers it
measures when there are too many) derives from the link. So anyone holding
the store and the ledger can recompute every decision (`spore ledger audit`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spore import model as M
from spore.data import Corpus, eval_batches, peer_batches, random_batch
from spore.swarm import codec, randomness, scoring, similarity, wire
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
MAX_ROWS = 64  # own and random rows an update is measured on, at most (128: too slow for `small`)
RANDOM_GROUP = 8  # random rows per pair of random pages
MIN_MEASURED = 4  # updates measured per window whatever the time budget says
REPLAY_WINDOWS = 4  # windows of earlier updates a new one is compared with for copies
PREVIOUS = "previous:"  # marks the previous window's updates among copy candidates


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
        dishonest: tuple[str, str] | None = None,
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
        self.gather_lists: dict[int, list[str] | None] = {}  # G(w) as published (the ledger's copy)
        self.gather_weights: dict[int, dict[str, float]] = {}
        # The last REPLAY_WINDOWS windows' valid updates: a replay of any of them is a copy.
        self.history: list[list[Submission]] = []
        self.links = randomness.chain(randomness_root(identity, manifest.run_id), manifest.windows)
        # Seconds of screening and measuring per window. The whole step must end well inside
        # the next window: in the warm-up peers wait for its gather list before they train.
        self.score_budget = 0.3 * manifest.window_seconds
        # Test-only (`--dishonest-validator`): ("favour" | "drop", peer hex). `spore ledger audit` catches both.
        self.dishonest = dishonest

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
        dishonest: tuple[str, str] | None = None,
    ) -> Validator:
        """Publish checkpoint 0 and the manifest; window 0 opens once `min_peers` announced."""
        if store.head(RUN_KEY) is not None:
            raise ProtocolError(f"{store.url} already holds a run; use a fresh store or --resume")
        if (out / LEDGER_FILE).exists():
            raise ProtocolError(f"{out / LEDGER_FILE} exists; use a fresh --out or --resume")
        links = randomness.chain(randomness_root(identity, manifest.run_id), manifest.windows)
        manifest = replace(manifest, randomness_commit=randomness.commitment(links).hex())
        v = cls(store, identity, manifest, out, corpus, dishonest=dishonest)
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
            manifest, t0=time.time() + lead_seconds,
            extra={**manifest.extra, "initial_eval_loss": initial, "scoring": asdict(v.params)},
        )
        v.replica.manifest = v.manifest
        doc = v.manifest.to_json()
        v.ledger.append("genesis", None,
                        {"manifest": doc, "checkpoint": v.checkpoint_entry(0), "scoring": asdict(v.params)})
        store.put(RUN_KEY, sign_json(doc, identity))
        v.save_theta()
        log.info("run %s opened: %d windows of %.1fs", v.manifest.run_id, v.manifest.windows, v.manifest.window_seconds)
        return v

    @classmethod
    def resume(
        cls, store: Store, identity: Identity, out: Path, corpus: Corpus | None = None,
        dishonest: tuple[str, str] | None = None,
    ) -> Validator:
        """Continue a run this key opened. History comes from the ledger, theta from the
        validator's own copy (checked against the ledger), never from store contents
        that others could have changed since."""
        if not (out / LEDGER_FILE).exists():
            raise ProtocolError(f"no ledger at {out / LEDGER_FILE} to resume from")
        led = SQLiteLedger(out / LEDGER_FILE, identity)
        genesis = next(led.records(), None)
        led.close()
        if genesis is None or genesis.kind != "genesis":
            raise ProtocolError(f"the ledger at {out / LEDGER_FILE} holds no genesis record")
        manifest = RunManifest.from_json(genesis.body["manifest"])
        if manifest.validator != identity.hex:
            raise ProtocolError("this ledger belongs to another validator key")
        params = scoring.ScoringParams(**genesis.body.get("scoring", {"gather_size": manifest.gather_size}))
        v = cls(store, identity, manifest, out, corpus, params, dishonest=dishonest)
        last = None
        for r in v.ledger.records():
            if r.kind == "genesis":
                v.theta_history[r.body["checkpoint"]["theta"]] = 0
            elif r.kind == "window":
                last = r
                v.theta_history[r.body["theta"]] = r.window + 1  # type: ignore[operator]
                v.known.update(r.body.get("known", []))
                v.states = {p: scoring.PeerState(**s["state"]) for p, s in r.body.get("ratings", {}).items()}
                v.gather_lists[r.window] = r.body.get("gather")  # type: ignore[index]
                v.gather_lists[r.window + 1] = r.body.get("gather_next")  # type: ignore[operator]
        want = v.ledger_theta(last)
        if not v.load_theta(want, 0 if last is None else last.window + 1):  # type: ignore[operator]
            # No usable local copy: replay from checkpoints under the ledger's own gather lists.
            v.replica.window = -1
            v.replica.catch_up(0 if last is None else last.window + 1,  # type: ignore[operator]
                               allowed=lambda w: None if v.gather_lists.get(w) is None
                               else {bytes.fromhex(p) for p in v.gather_lists[w] or []})
        if v.replica.digest().hex() != want:
            raise ProtocolError("theta (local copy or replay) does not match the ledger; refusing to continue")
        if last is not None:
            v.restore_history(last.window)  # type: ignore[arg-type]
        log.info("resumed at window %d with %d rated peers", v.replica.window, len(v.states))
        return v

    def restore_history(self, last: int) -> None:
        """What copy and restatement checks remember from earlier windows, gathered again: the
        valid updates of the last REPLAY_WINDOWS windows and the last window's aggregate."""
        self.history = [self.replica.gather(w).accepted for w in range(max(0, last - REPLAY_WINDOWS + 1), last + 1)]
        allowed = self.gather_lists.get(last)
        used = [s for s in self.history[-1] if allowed is None or s.peer.hex() in allowed]
        m = self.manifest
        self.replica.last_aggregate = (
            codec.aggregate([s.update for s in used], m.codec, m.aggregation) if used else None
        )

    def ledger_theta(self, last: Any) -> str:
        if last is not None:
            return str(last.body["theta"])
        genesis = next(self.ledger.records())
        return str(genesis.body["checkpoint"]["theta"])

    # -- the validator's own copy of theta (out/theta.safetensors) ----------------

    def save_theta(self) -> None:
        from safetensors.torch import save_file

        tmp = self.out / "theta.safetensors.tmp"
        save_file({n: p.detach().contiguous() for n, p in self.replica.model.named_parameters()}, str(tmp),
                  metadata={"window": str(self.replica.window)})
        os.replace(tmp, self.out / "theta.safetensors")

    def load_theta(self, digest: str, window: int) -> bool:
        from safetensors.torch import load_file

        path = self.out / "theta.safetensors"
        try:
            tensors = load_file(str(path))
            with torch.no_grad():
                for n, p in self.replica.model.named_parameters():
                    p.copy_(tensors[n])
        except Exception as e:  # missing or torn: fall back to replay
            log.warning("no usable theta copy at %s (%s); replaying from the store", path, e)
            return False
        self.replica.window = window
        return self.replica.digest().hex() == digest

    # -- one window ---------------------------------------------------------------

    def checkpoint_entry(self, window: int) -> dict[str, Any]:
        _, manifest_key = checkpoint_keys(window)
        body, _ = open_json(self.store.get(manifest_key, MAX_JSON_BYTES), signer=self.identity.id)
        return {"window": window, "sha256": body["sha256"], "theta": body["theta"]}

    def link(self, window: int) -> bytes:
        return self.links[window]

    def measure(self, window: int, g: Gathered, allowed: list[str] | None
                ) -> tuple[dict[str, scoring.Measurement], dict[str, float], list[str]]:
        """Screen every valid update, then measure as many as the time budget allows, in
        `measurement_order`; mark copies among all of them. Returns the measurements, the
        screening scores and the window's reference set (`reference_set`).

        Measuring costs three forward passes per update and one more for the reference.
        Screening costs one backward pass per window and one sparse dot product per update:
        the first-order loss change an update makes on the window's random rows.
        A flood of cheap updates (noise, zeros) screens at about 0 and waits
        behind every update that really descends; copies are caught by
        `find_copies` whether or not they are measured.
        """
        rep = self.replica
        if not g.accepted:
            return {}, {}, []
        started = time.perf_counter()
        link = self.link(window)
        rand = measurement_rows(rep.corpus, self.manifest, link)
        screen = screen_scores(rep, g.accepted, rand)
        copies = find_copies(g, rep, self.params, link, [x for h in self.history for x in h])
        restated = find_restatements(g, rep, self.params)
        order = measurement_order(g.accepted, self.states, screen, {**restated, **copies}, link)

        def more(done: int) -> bool:  # the rest keep their standing this window
            return done < MIN_MEASURED or time.perf_counter() - started <= self.score_budget

        out, reference = measure_updates(rep, self.manifest, order, link, g, allowed, self.params, more,
                                         lambda s: self.behind(window, s))
        mark_unoriginal(out, g, copies, restated, lambda s: self.behind(window, s), self.params.sync_tolerance)
        return out, screen, reference

    def behind(self, window: int, s: Submission) -> int | None:
        """Outer steps between the theta the update was computed from and theta(window)."""
        base = s.header.base_digest.hex()
        return window - self.theta_history[base] if base in self.theta_history else None

    def gather_list_for(self, window: int) -> list[str] | None:
        """G(window) as this validator decided it (None: not decided yet, in the warm-up), and make
        sure the store holds exactly that list: a deleted, replaced or replayed copy is
        published again (with the same body, so peers that read it agree)."""
        m = self.manifest
        if window >= m.windows or (window < m.warmup_windows and window not in self.gather_lists):
            return None  # a warm-up window's list is decided after measuring it
        if window not in self.gather_lists:
            return self.publish_gather_list(window)
        chosen = self.gather_lists[window]
        if chosen is None:
            return None
        body = {"window": window, "peers": chosen, "weights": self.gather_weights.get(window, {}),
                "rated_through": window - 1}
        if not self.store_list_matches(window, chosen):
            log.warning("gather list %d in the store is missing or not ours; publishing it again", window)
            self.store.put(gather_key(window), sign_json(body, self.identity))
        return chosen

    def store_list_matches(self, window: int, chosen: list[str]) -> bool:
        try:
            body, _ = open_json(self.store.get(gather_key(window), MAX_JSON_BYTES), signer=self.identity.id)
        except Exception:
            return False
        return body.get("window") == window and body.get("peers") == chosen

    def publish_warmup_list(self, window: int, chosen: list[str]) -> list[str]:
        """Publish a warm-up window's list, unless a valid one of ours is already there (published
        before a crash: peers may have used it)."""
        try:
            body, _ = open_json(self.store.get(gather_key(window), MAX_JSON_BYTES), signer=self.identity.id)
            if body.get("window") == window and isinstance(body.get("peers"), list):
                chosen = sorted(str(p) for p in body["peers"])
        except Exception:
            body = {"window": window, "peers": chosen, "weights": {}, "rated_through": window}
            self.store.put(gather_key(window), sign_json(body, self.identity))
        self.gather_lists[window], self.gather_weights[window] = chosen, {}
        return chosen

    def publish_gather_list(self, window: int) -> list[str] | None:
        """Decide and publish G(window) from the ratings so far; None during the warm-up.

        A valid list of ours already in the store for this window (published
        before a crash) is kept: peers may have used it, and everyone must
        aggregate the same updates.
        """
        m = self.manifest
        if window < m.warmup_windows or window >= m.windows:
            return None
        try:
            body, _ = open_json(self.store.get(gather_key(window), MAX_JSON_BYTES), signer=self.identity.id)
            if body.get("window") == window and isinstance(body.get("peers"), list):
                self.gather_lists[window] = sorted(str(p) for p in body["peers"])
                self.gather_weights[window] = dict(body.get("weights") or {})
                return self.gather_lists[window]
        except Exception:  # missing, foreign or replayed: decide it ourselves
            pass
        chosen = scoring.gather_list(self.states, self.params.gather_size)
        if self.dishonest and self.dishonest[0] == "favour" and self.dishonest[1] not in chosen:
            chosen = sorted([*chosen, self.dishonest[1]])
        weights = scoring.incentive_weights(self.states, chosen)
        self.gather_lists[window], self.gather_weights[window] = chosen, weights
        body = {"window": window, "peers": chosen, "weights": weights, "rated_through": window - 1}
        self.store.put(gather_key(window), sign_json(body, self.identity))
        return chosen

    def step(self) -> dict[str, Any]:
        """Validate the replica's current window and move theta forward."""
        m, rep = self.manifest, self.replica
        w = rep.window
        allowed = self.gather_list_for(w)  # repaired in the store if someone removed or replaced it
        sleep_until(m.gather_time(w))
        allowed = self.gather_list_for(w)
        g = rep.gather(w)  # every valid submission, for scoring and the record
        if self.dishonest and self.dishonest[0] == "drop":
            g.accepted = [s for s in g.accepted if s.peer.hex() != self.dishonest[1]]
        t_start = time.time()
        measured, screen, reference = self.measure(w, g, allowed)
        sampled = [s for s in g.accepted
                   if s.peer.hex() in measured and not math.isnan(measured[s.peer.hex()].own_before)]
        self.history = [*self.history, list(g.accepted)][-REPLAY_WINDOWS:]
        if self.dishonest and self.dishonest[0] == "favour" and self.dishonest[1] in measured:
            x = measured[self.dishonest[1]]
            measured[self.dishonest[1]] = replace(x, random_after=x.random_after * 0.5, fit_z=10.0,
                                                  copy_of=None, restates=None)
        measure_seconds = time.time() - t_start

        if w < m.warmup_windows:  # nobody is rated yet: G(w) comes from this window's measurements
            allowed = scoring.warmup_gather_list(measured, self.params)
            if self.dishonest and self.dishonest[0] == "favour" and self.dishonest[1] not in allowed:
                allowed = sorted([*allowed, self.dishonest[1]])
            allowed = self.publish_warmup_list(w, allowed)

        # theta(w+1): the same aggregate every peer computes, under G(w).
        used = Gathered(w, [s for s in g.accepted if allowed is None or s.peer.hex() in allowed], g.rejected)
        rep.apply(used)
        self.theta_history[rep.digest().hex()] = rep.window

        # Rate every peer that submitted (valid or not) or ever did; an outage blames nobody
        # who is missing (scoring.judged_peers).
        submitters = {s.peer.hex() for s in g.accepted} | {r.peer for r in g.rejected if r.peer}
        self.known |= submitters
        judged = scoring.judged_peers(self.states, self.known, submitters, {s.peer.hex() for s in g.accepted},
                                      measured)
        rated = bool(judged)
        scoring.update_window(self.states, judged, self.params)
        typical = scoring.typical_help(measured)
        for s in used.accepted:
            self.states.setdefault(s.peer.hex(), scoring.PeerState(z=self.params.ordinal_z)).windows_in_gather += 1
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
            "randomness": self.link(w).hex(),
            "submissions": [submission_entry(s) for s in g.accepted],
            "rejected": [asdict(r) for r in g.rejected],
            "screen": {p: _json_float(x) for p, x in sorted(screen.items())},
            "sampled": sorted(s.peer.hex() for s in sampled),
            "reference": reference,
            "gather": allowed,
            "aggregated": [s.peer.hex() for s in used.accepted],
            "scores": {p: measurement_entry(x, self.params, typical, self.states.get(p))
                       for p, x in sorted(measured.items())},
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
        self.save_theta()
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


# ---------------------------------------------------------------------------
# Pure pieces of a window's validation, shared with `spore ledger audit`


def randomness_root(identity: Identity, run_id: str) -> bytes:
    return randomness.root_from_signature(identity.sign(randomness.SIGN_DOMAIN + run_id.encode()))


def screen_scores(rep: Replica, accepted: list[Submission], rows: np.ndarray) -> dict[str, float]:
    """Per update, the first-order relative loss change it makes on `rows`:
    outer_lr * <grad loss(rows), update> / loss(rows) (positive: it descends).

    One backward pass per window; then each update costs a gather of the
    gradient at its kept positions (about topk / chunk of the model), not a
    dense decode, so screening a flood stays cheap.
    """
    p = rep.manifest.codec
    rep.model.eval()
    rep.model.zero_grad(set_to_none=True)
    loss = M.lm_loss(rep.model, rows)
    loss.backward()
    grads = []
    for prm, plan in zip(rep.params(), rep.plans, strict=True):
        g = torch.zeros(plan.shape, dtype=torch.float64) if prm.grad is None else prm.grad.detach().double()
        grads.append(g.reshape(-1) if plan.mode == codec.DENSE else codec.to_chunks(g, plan, p))
    rep.model.zero_grad(set_to_none=True)
    scale = rep.manifest.train.outer_lr / float(loss.detach())
    out = {}
    with torch.no_grad():
        for s in accepted:
            dot = 0.0
            for g, u in zip(grads, s.update, strict=True):
                if u.plan.mode == codec.DENSE:
                    assert u.values is not None
                    dot += float((g * u.values.reshape(-1).to(torch.float64)).sum())
                    continue
                assert u.indices is not None and u.codes is not None and u.lut is not None
                full, tail = g
                lut = u.lut.to(torch.float64)
                dot += float((full.gather(1, u.indices.long()) * lut[u.codes.long()]).sum())
                if u.plan.tail:
                    assert u.tail_indices is not None and u.tail_codes is not None
                    dot += float((tail.gather(1, u.tail_indices.long()) * lut[u.tail_codes.long()]).sum())
            out[s.peer.hex()] = scale * dot
    return out


def measurement_order(
    accepted: list[Submission], states: dict[str, scoring.PeerState], screen: dict[str, float],
    copies: dict[str, str], link: bytes,
) -> list[Submission]:
    """Who is measured first when not everyone fits the window's budget.

    Copies are never measured (they fail anyway). Two queues take turns:
    established peers (a positive final score), in an order drawn from the
    window's committed randomness, and everyone else, in that random order
    but in three tiers:

      1. updates whose efficiency (screening score per unit of update norm:
         how well the step points downhill on rows nobody could predict)
         reaches a quarter of the established peers' median, or, while
         nobody is established, of the best newcomer's; and whose peer did
         not fail its last measured window (EMA not negative);
      2. the same, from peers whose EMA is negative;
      3. the rest.

    A flood of new ids cannot push an established honest peer out; junk
    (noise, zeros) waits behind every useful update however many junk ids
    there are (100 noise ids once set a median-based bar from their own
    scores and honest newcomers waited behind them); a peer that keeps
    failing cannot crowd out a newcomer that has not been measured yet; and
    nobody buys priority with a huge step (an outsider starved the honest
    peers with max-scale sign-of-gradient updates when the order was by
    magnitude; efficiency does not grow with the step). Established peers
    cannot starve newcomers either.
    """
    rank = {int(i): r for r, i in enumerate(randomness.rng(link, b"sample").permutation(len(accepted)))}
    pool = [i for i in range(len(accepted)) if accepted[i].peer.hex() not in copies]

    def state(i: int) -> scoring.PeerState:
        return states.get(accepted[i].peer.hex(), scoring.PeerState())

    def efficiency(i: int) -> float:
        x, norm = _screen_key(screen.get(accepted[i].peer.hex())), codec.update_norm(accepted[i].update)
        return x / norm if norm > 0 and math.isfinite(x) else -math.inf

    established = sorted((i for i in pool if state(i).final > 0), key=lambda i: rank[i])
    others = [i for i in pool if state(i).final <= 0]
    eff = {i: efficiency(i) for i in pool}
    proven = [eff[i] for i in established if eff[i] > 0]
    bar = 0.25 * (statistics.median(proven) if proven else max((eff[i] for i in others), default=math.inf))
    bar = bar if bar > 0 else math.inf
    others.sort(key=lambda i: (eff[i] < bar, state(i).ema < 0, rank[i]))
    merged = [i for pair in itertools.zip_longest(established, others) for i in pair if i is not None]
    return [accepted[i] for i in merged]


def _screen_key(x: float | None) -> float:
    return x if x is not None and math.isfinite(x) else -math.inf


def measurement_rows(corpus: Corpus, m: RunManifest, link: bytes) -> np.ndarray:
    """The window's random rows: as many as a full update's own rows (capped at MAX_ROWS), in
    groups of RANDOM_GROUP rows from 2 pages each, so that they span many pages (a peer's own rows
    come from 2; the comparison should not hinge on which 2 pages the dice picked)."""
    t = m.train
    rows = min(t.inner_steps * t.batch_size, MAX_ROWS)
    groups = [
        random_batch(corpus, randomness.derive(link, b"random-rows" + i.to_bytes(4, "little")),
                     min(RANDOM_GROUP, rows - i * RANDOM_GROUP), t.seq_len)
        for i in range((rows + RANDOM_GROUP - 1) // RANDOM_GROUP)
    ]
    return np.concatenate(groups)


def own_rows(corpus: Corpus, m: RunManifest, s: Submission, link: bytes) -> np.ndarray:
    """Every row of the batches the update declares it trained on (its first `steps`),
    or MAX_ROWS of them drawn with the window's randomness."""
    t = m.train
    steps = s.header.steps or t.inner_steps
    assigned = peer_batches(corpus, bytes.fromhex(m.run_seed), s.peer, s.header.window, t.inner_steps,
                            t.batch_size, t.seq_len)
    rows = assigned[:steps].reshape(-1, t.seq_len + 1)
    if len(rows) <= MAX_ROWS:
        return rows
    pick = randomness.rng(link, b"own-rows" + s.peer).choice(len(rows), size=MAX_ROWS, replace=False)
    return rows[np.sort(pick)]


def measure_updates(
    rep: Replica, m: RunManifest, order: list[Submission], link: bytes, g: Gathered,
    allowed: list[str] | None, params: scoring.ScoringParams, more: Callable[[int], bool],
    behind: Callable[[Submission], int | None],
) -> tuple[dict[str, scoring.Measurement], list[str]]:
    """Measure the updates of `order` while `more(measured so far)`, each applied alone to
    theta; then the window's reference update (`reference_set`) on the same rows, which
    turns every fit_z into a paired comparison (scoring.fit_statistic). Theta is left as
    it was. The validator and `spore ledger audit` both measure through this function."""
    rand = measurement_rows(rep.corpus, m, link)
    theta = [p.detach().clone() for p in rep.params()]
    rep.model.eval()
    rows: dict[str, RowLosses] = {}
    with torch.no_grad():
        random_before = M.row_losses(rep.model, rand)
        for s in order:
            if not more(len(rows)):
                break
            own = own_rows(rep.corpus, m, s, link)
            own_before = M.row_losses(rep.model, own)
            apply_alone(rep, s)
            rows[s.peer.hex()] = RowLosses(s, own, own_before, M.row_losses(rep.model, own),
                                           M.row_losses(rep.model, rand))
            _restore(rep, theta)
    plain = {p: make_measurement(x.own_before, x.own_after, random_before, x.random_after, behind(x.sub))
             for p, x in rows.items()}
    reference = reference_set(g.accepted, allowed, plain, params)
    if not reference:
        return plain, []
    with torch.no_grad():
        apply_alone(rep, Gathered(rep.window, sorted(reference, key=lambda s: s.peer), []))
        random_ref = M.row_losses(rep.model, rand)
        own_ref = {p: M.row_losses(rep.model, x.own) for p, x in rows.items()}
        _restore(rep, theta)
    out = {p: make_measurement(x.own_before, x.own_after, random_before, x.random_after, behind(x.sub),
                               own_ref[p], random_ref)
           for p, x in rows.items()}
    return out, sorted(s.peer.hex() for s in reference)


@dataclass
class RowLosses:
    """One measured update's per-row losses: its own rows before and after it, random rows after it."""

    sub: Submission
    own: np.ndarray
    own_before: np.ndarray
    own_after: np.ndarray
    random_after: np.ndarray


def reference_set(
    accepted: list[Submission], allowed: list[str] | None, plain: dict[str, scoring.Measurement],
    params: scoring.ScoringParams,
) -> list[Submission]:
    """The updates whose aggregate every measured update is compared with, row by row:
    the window's gather list (peers that earned their place; an outsider cannot pad it),
    or, in the warm-up or when none of the list submitted, the measured updates that help
    on random rows (scoring.helpful_updates)."""
    if allowed:
        chosen = [s for s in accepted if s.peer.hex() in set(allowed)]
        if chosen:
            return chosen
    good = set(scoring.helpful_updates(plain, params))
    return [s for s in accepted if s.peer.hex() in good]


def _restore(rep: Replica, theta: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, p0 in zip(rep.params(), theta, strict=True):
            p.copy_(p0)


def apply_alone(rep: Replica, s: Submission | Gathered) -> None:
    """theta := theta - outer_lr * decoded update, or aggregate of a Gathered (the replica's own
    rounding rule), without moving to the next window."""
    window = rep.window
    rep.apply(s if isinstance(s, Gathered) else Gathered(window, [s], []))
    rep.window = window


def make_measurement(
    own_before: np.ndarray, own_after: np.ndarray, random_before: np.ndarray, random_after: np.ndarray,
    behind: int | None, own_ref: np.ndarray | None = None, random_ref: np.ndarray | None = None,
) -> scoring.Measurement:
    ob, oa, rb, ra = (x.tolist() for x in (own_before, own_after, random_before, random_after))
    fit = scoring.fit_statistic(ob, oa, rb, ra, None if own_ref is None else own_ref.tolist(),
                                None if random_ref is None else random_ref.tolist())
    return scoring.Measurement(
        float(np.mean(own_before)), float(np.mean(own_after)), float(np.mean(random_before)),
        float(np.mean(random_after)), behind, fit_z=fit,
    )


def mark_unoriginal(
    out: dict[str, scoring.Measurement], g: Gathered, copies: dict[str, str], restated: dict[str, str],
    behind: Callable[[Submission], int | None], tolerance: int,
) -> None:
    """Copies, restatements and updates built on an old theta fail their window whether or not
    they were measured (these checks cost no forward pass: an unmeasured update that fails one
    must not keep a standing it earned before)."""
    for s in g.accepted:
        p = s.peer.hex()
        if p in copies or p in restated:
            out.setdefault(p, unmeasured(behind(s)))
            out[p].copy_of, out[p].restates = copies.get(p), restated.get(p)
        elif p not in out and scoring.sync_score(behind(s), tolerance) == 0.0:
            out[p] = unmeasured(behind(s))


def unmeasured(behind: int | None) -> scoring.Measurement:
    nan = float("nan")
    return scoring.Measurement(nan, nan, nan, nan, behind)


def find_copies(
    g: Gathered, rep: Replica, params: scoring.ScoringParams, link: bytes, previous: list[Submission]
) -> dict[str, str]:
    """{offender: original} among the window's valid updates and against the `previous` windows'
    (a replay of an earlier update is a copy of it, whoever sent it), by exact cosine on
    sketch candidates (similarity.py); the sketch seed comes from the window's randomness."""
    updates = {s.peer.hex(): s.update for s in g.accepted}
    stamps = {s.peer.hex(): s.modified for s in g.accepted}
    for s in previous:
        key = f"{PREVIOUS}{s.header.window}:{s.peer.hex()}"
        updates[key], stamps[key] = s.update, s.modified
    found = similarity.find_copies(updates, stamps, rep.manifest.codec, params.copy_threshold,
                                   similarity.SketchParams(seed=randomness.derive(link, b"sketch")))
    return {o: orig.rsplit(":", 1)[-1] for o, orig in found.items() if not o.startswith(PREVIOUS)}


def find_restatements(g: Gathered, rep: Replica, params: scoring.ScoringParams) -> dict[str, str]:
    """{peer: what} for updates that mostly restate the last public aggregate."""
    if rep.last_aggregate is None:
        return {}
    reference = similarity.as_vector(rep.last_aggregate, rep.manifest.codec)  # once, not per update
    out = {}
    for s in g.accepted:
        share = similarity.restatement(s.update, [reference], rep.manifest.codec)
        if share >= params.restatement_threshold:
            out[s.peer.hex()] = f"aggregate of window {rep.window - 1} ({share:.2f})"
    return out


def submission_entry(s: Submission) -> dict[str, Any]:
    return {"peer": s.peer.hex(), "key": s.key, "sha256": s.digest, "bytes": s.size,
            "stored_at": s.modified, "base": s.header.base_digest.hex()}


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None  # a poisoned update can make a loss infinite


def measurement_entry(
    x: scoring.Measurement, params: scoring.ScoringParams, typical: float, state: scoring.PeerState | None
) -> dict[str, Any]:
    evidence = scoring.fit_evidence(state.fit_history, params) if state is not None else None
    return {
        "own_before": _json_float(x.own_before), "own_after": _json_float(x.own_after),
        "random_before": _json_float(x.random_before), "random_after": _json_float(x.random_after),
        "gradient_score": _json_float(x.gradient_score), "fit_z": _json_float(x.fit_z),
        "fit_evidence": evidence, "behind": x.behind, "copy_of": x.copy_of, "restates": x.restates,
        "sync": scoring.sync_score(x.behind, params.sync_tolerance),
        "outcome": scoring.window_outcome(x, params, typical, evidence),
    }


def rating_entry(st: scoring.PeerState) -> dict[str, Any]:
    return {"ordinal": st.ordinal, "ema": st.ema, "sync": st.sync, "final": st.final, "state": asdict(st)}
