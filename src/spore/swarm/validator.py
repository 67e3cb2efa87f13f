"""The validator: opens the run, follows every window, publishes records and checkpoints.

It holds the same replica of theta as the peers and gathers each window by
the same rules. What it adds is the run's anchor of trust: the signed run
manifest, the signed checkpoints late joiners start from, and a signed
record per window (what was submitted, what was rejected and why, the theta
everyone must now hold, and its held-out loss).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from pathlib import Path

from spore import model as M
from spore.data import Corpus, eval_batches
from spore.swarm import wire
from spore.swarm.identity import Identity
from spore.swarm.protocol import (
    MAX_JSON_BYTES,
    RUN_KEY,
    ProtocolError,
    RunManifest,
    open_json,
    record_key,
    sign_json,
    sleep_until,
)
from spore.swarm.replica import Gathered, Replica
from spore.swarm.store import Store

log = logging.getLogger("spore.swarm.validator")


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
    index_coding: int = wire.ELIAS_FANO,
) -> RunManifest:
    train = preset.train if outer_lr is None else replace(preset.train, outer_lr=outer_lr)
    from spore.swarm.codec import CodecParams

    return RunManifest(
        run_id=secrets.token_hex(8),
        validator=identity.hex,
        t0=0.0,  # set when the run starts
        window_seconds=window_seconds,
        grace_seconds=grace_seconds,
        windows=windows,
        preset=preset.name,
        model=preset.model,
        train=train,
        codec=CodecParams(topk=64, chunk=train.chunk, block=int(train.chunk**0.5)),
        index_coding=index_coding,
        run_seed=secrets.token_hex(16),
        corpus_digest=corpus_digest,
        checkpoint_every=preset.checkpoint_every,
        aggregation=aggregation,
    )


def count_announced_peers(store: Store) -> int:
    n = 0
    for info in store.list("peers/"):
        try:
            body, who = open_json(store.get(info.key, MAX_JSON_BYTES))
        except Exception:  # unreadable or forged announcements do not count
            continue
        if info.key == f"peers/{who.hex()}.json" and body.get("peer") == who.hex():
            n += 1
    return n


class Validator:
    def __init__(
        self, store: Store, identity: Identity, manifest: RunManifest, out: Path, corpus: Corpus | None = None
    ) -> None:
        self.store = store
        self.identity = identity
        self.manifest = manifest
        self.out = out
        self.replica = Replica(store, manifest, corpus)
        t = manifest.train
        self.eval_set = eval_batches(self.replica.corpus, t.eval_sequences, t.seq_len, t.batch_size)

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
        v = cls(store, identity, manifest, out, corpus)
        v.replica.window = 0
        v.replica.publish_checkpoint(identity)
        initial = M.eval_loss(v.replica.model, v.eval_set)
        deadline = time.time() + wait_seconds
        while count_announced_peers(store) < min_peers:
            if time.time() > deadline:
                log.warning("only %d of %d peers announced; starting anyway", count_announced_peers(store), min_peers)
                break
            time.sleep(0.2)
        v.manifest = replace(
            manifest, t0=time.time() + lead_seconds, extra={**manifest.extra, "initial_eval_loss": initial}
        )
        v.replica.manifest = v.manifest
        store.put(RUN_KEY, sign_json(v.manifest.to_json(), identity))
        log.info("run %s opened: %d windows of %.1fs", v.manifest.run_id, v.manifest.windows, v.manifest.window_seconds)
        return v

    def record(self, g: Gathered, eval_loss: float) -> dict:
        return {
            "window": g.window,
            "submissions": [
                {"peer": s.peer.hex(), "key": s.key, "sha256": s.digest, "bytes": s.size,
                 "stored_at": s.modified, "base": s.header.base_digest.hex()}
                for s in g.accepted
            ],
            "rejected": [{"key": r.key, "peer": r.peer, "reason": r.reason, "detail": r.detail} for r in g.rejected],
            "theta": self.replica.digest().hex(),  # theta at the start of window + 1
            "eval_loss": eval_loss,
            "time": time.time(),
        }

    def run(self) -> None:
        m, rep = self.manifest, self.replica
        while rep.window < m.windows:
            w = rep.window
            sleep_until(m.gather_time(w))
            g = rep.gather(w)
            rep.apply(g)
            loss = M.eval_loss(rep.model, self.eval_set)
            self.store.put(record_key(w), sign_json(self.record(g, loss), self.identity))
            if rep.window % m.checkpoint_every == 0 or rep.window == m.windows:
                rep.publish_checkpoint(self.identity)
            log.info(
                "window %d: %d accepted, %d rejected, eval loss %.4f",
                w, len(g.accepted), len(g.rejected), loss,
            )
        M.save_pretrained(rep.model, self.out / "final_model")


def resume(store: Store, identity: Identity, out: Path) -> Validator:
    """Continue a run this validator opened (after a crash): catch up, then go on."""
    from spore.swarm.replica import fetch_manifest

    manifest = fetch_manifest(store, identity.id)
    v = Validator(store, identity, manifest, out)
    done = [int(i.key.split("/")[1][:8]) for i in store.list("windows/") if i.key.endswith(".json")]
    v.replica.catch_up(max(done) + 1 if done else 0)
    return v


