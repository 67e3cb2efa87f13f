"""A SparseLoCo peer: train on your slice, publish a compressed update, apply the aggregate.

Per window w, starting from the shared theta(w) (spec section 1):

    H inner AdamW steps on peer_batches(run_seed, my id, w)  -> theta_r
    pseudo_gradient = theta(w) - theta_r
    update, residual = error_feedback_step(residual, pseudo_gradient)
    upload the signed update before deadline(w)
    after gather_time(w): theta(w+1) = theta(w) - alpha * Aggregate(valid submissions)

The peer keeps its error-feedback residual and inner optimizer state in its
work folder, so a restarted peer resumes where it stopped; theta itself is
always re-derived from the store (checkpoint + replay), never trusted from disk.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from spore import model as M
from spore.data import Corpus, load_corpus, peer_batches
from spore.swarm import codec, wire
from spore.swarm.identity import Identity
from spore.swarm.protocol import (
    RUN_KEY,
    ProtocolError,
    RunManifest,
    peer_key,
    sign_json,
    sleep_until,
    status_key,
    update_key,
)
from spore.swarm.replica import Replica, fetch_manifest
from spore.swarm.store import Store, StoreError, wait_for

log = logging.getLogger("spore.swarm.peer")
UPLOAD_MARGIN = 0.1  # share of a window kept free after training for compressing and uploading


@dataclass
class WindowResult:
    window: int
    train_loss: float | None
    uploaded: bool
    bytes_sent: int
    note: str = ""


class Peer:
    def __init__(
        self, store: Store, identity: Identity, manifest: RunManifest, workdir: Path, corpus: Corpus | None = None
    ) -> None:
        self.store = store
        self.identity = identity
        self.manifest = manifest
        self.workdir = workdir
        self.replica = Replica(store, manifest, corpus)
        t = manifest.train
        self.optimizer = torch.optim.AdamW(
            self.replica.model.parameters(), lr=t.inner_lr, betas=t.betas, weight_decay=t.weight_decay
        )
        self.residual = [torch.zeros_like(p) for p in self.replica.params()]
        self.step_seconds: float | None = None  # running estimate of one inner step's cost
        # How long to wait for the validator's gather list before giving up.
        self.list_wait = 10 * manifest.window_seconds
        self._load_state()

    # -- local state (error feedback and inner optimizer survive a restart) --

    @property
    def state_path(self) -> Path:
        return self.workdir / "state.pt"

    def _load_state(self) -> None:
        if not self.state_path.exists():
            return
        try:
            st = torch.load(self.state_path, weights_only=True)
        except Exception as e:  # a torn or foreign file costs us the residual, nothing else
            log.warning("ignoring unreadable peer state %s: %s", self.state_path, e)
            return
        if st.get("run_id") != self.manifest.run_id or st.get("peer") != self.identity.hex:
            log.warning("peer state %s belongs to another run or key; starting fresh", self.state_path)
            return
        self.residual = [r.clone() for r in st["residual"]]
        self.optimizer.load_state_dict(st["optimizer"])
        log.info("resumed error feedback and optimizer state from window %d", st["window"])

    def _save_state(self, window: int) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(
            {
                "run_id": self.manifest.run_id,
                "peer": self.identity.hex,
                "window": window,
                "residual": self.residual,
                "optimizer": self.optimizer.state_dict(),
            },
            tmp,
        )
        os.replace(tmp, self.state_path)

    # -- one window -----------------------------------------------------------

    def train(self, window: int, steps: int | None = None) -> tuple[list[torch.Tensor], float]:
        """The first `steps` (default: all H) inner steps from theta(w); returns the
        pseudo-gradient and the mean loss.

        The model is put back to theta(w) afterwards: only the aggregate moves it.
        """
        m, t, rep = self.manifest, self.manifest.train, self.replica
        start = [p.detach().clone() for p in rep.params()]
        batches = peer_batches(
            rep.corpus, bytes.fromhex(m.run_seed), self.identity.id, window, t.inner_steps, t.batch_size, t.seq_len
        )[: steps or t.inner_steps]
        losses = []
        rep.model.train()
        for batch in batches:
            began = time.perf_counter()
            loss = M.lm_loss(rep.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rep.model.parameters(), t.grad_clip)
            self.optimizer.step()
            losses.append(float(loss.detach()))
            took = time.perf_counter() - began
            self.step_seconds = took if self.step_seconds is None else 0.7 * self.step_seconds + 0.3 * took
        pseudo_gradient = []
        with torch.no_grad():
            for p, p0 in zip(rep.params(), start, strict=True):
                pseudo_gradient.append(p0 - p.detach())
                p.copy_(p0)
        return pseudo_gradient, sum(losses) / len(losses)

    def make_update(self, window: int, pseudo_gradient: list[torch.Tensor], steps: int = 0) -> bytes:
        m = self.manifest
        update, self.residual = codec.error_feedback_step(
            self.residual, pseudo_gradient, m.train.beta, self.replica.plans, m.codec
        )
        header = wire.Header(
            window, self.identity.id, self.replica.model_id, self.replica.digest(), m.codec, m.index_coding,
            0 if steps in (0, m.train.inner_steps) else steps,
        )
        return wire.encode(update, header, self.identity)

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        """The signed update for `window` from its first `steps` inner steps (default all;
        None: nothing to send) and the mean training loss."""
        pseudo_gradient, loss = self.train(window, steps)
        return self.make_update(window, pseudo_gradient, steps or 0), loss

    def steps_that_fit(self, window: int) -> int:
        """As many inner steps as fit before the deadline (at least 1, at most H), leaving
        a margin for compressing and uploading."""
        h = self.manifest.train.inner_steps
        if self.step_seconds is None:
            return h
        left = self.manifest.deadline(window) - time.time() - UPLOAD_MARGIN * self.manifest.window_seconds
        return max(1, min(h, int(left / self.step_seconds)))

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        self._save_state(window)
        if payload is None:
            return WindowResult(window, loss, False, 0, "nothing to send")
        if time.time() > self.manifest.deadline(window):
            return WindowResult(window, loss, False, 0, "missed the deadline; not uploaded")
        self.store.put(update_key(window, self.identity.id), payload)
        return WindowResult(window, loss, True, len(payload))

    def work_window(self, window: int) -> WindowResult:
        """Produce and upload the update for `window`. A slow or loaded peer trains fewer
        inner steps and says so in its update (the validator measures exactly those
        batches); one slow window never stops it from trying in the next."""
        steps = self.steps_that_fit(window)
        payload, loss = self.produce(window, steps)
        result = self.upload(window, payload, loss)
        if steps < self.manifest.train.inner_steps:
            result.note = (result.note + f" partial: {steps} of {self.manifest.train.inner_steps} steps").strip()
        return result

    def publish_status(self, window: int, result: WindowResult | None) -> None:
        body = {
            "window": window,
            "peer": self.identity.hex,
            "theta": self.replica.digest().hex(),
            "train_loss": None if result is None else result.train_loss,
            "uploaded": False if result is None else result.uploaded,
            "bytes": 0 if result is None else result.bytes_sent,
            "note": "" if result is None else result.note,
            "time": time.time(),
        }
        self.store.put(status_key(window, self.identity.id), sign_json(body, self.identity))

    def follow(self, window: int) -> None:
        """Apply window `window`'s aggregate: theta(w) -> theta(w+1)."""
        self.replica.advance(window, self.list_wait)

    # -- the whole run ----------------------------------------------------------

    def run(self) -> None:
        m, rep = self.manifest, self.replica
        while True:
            now_window = min(max(m.window_at(time.time()), 0), m.windows)
            # Theta must be theta(now_window): everything before it is decided.
            if rep.window < now_window:
                sleep_until(m.gather_time(now_window - 1))
                try:
                    rep.catch_up(now_window, self.list_wait)
                except (TimeoutError, ProtocolError, StoreError) as e:
                    # The store lacks something everyone needs (a gather list, an update of
                    # a replayed window). Wait and try again: the validator republishes
                    # lists, and a later checkpoint lets us skip what is gone.
                    log.warning("cannot catch up to window %d yet: %s", now_window, e)
                    time.sleep(min(5.0, m.window_seconds))
                    continue
            if rep.window >= m.windows:
                self.publish_status(rep.window, None)  # the final theta, for consistency checks
                log.info("run finished at window %d", rep.window)
                return
            w = rep.window
            sleep_until(m.open_time(w))  # an update stored before its window opens is rejected
            result = self.work_window(w)
            self.publish_status(w, result)
            log.info(
                "window %d: loss %s, %s (%d bytes) %s",
                w, f"{result.train_loss:.4f}" if result.train_loss is not None else "-",
                "uploaded" if result.uploaded else "not uploaded", result.bytes_sent, result.note,
            )
            sleep_until(m.gather_time(w))
            try:
                self.follow(w)
            except (TimeoutError, ProtocolError, StoreError) as e:
                log.warning("cannot apply window %d yet: %s", w, e)


def join(
    store: Store, identity: Identity, validator: bytes, workdir: Path, wait_seconds: float, adversary: str | None = None
) -> Peer:
    """Get ready, announce ourselves, wait for the run manifest, and build a peer on it.

    The slow preparation (reading the corpus, importing the model code) comes
    before the announcement, so that a validator waiting for announced peers
    starts window 0 when they can actually train in it.
    """
    corpus = load_corpus()
    import transformers.models.llama.modeling_llama  # noqa: F401  (slow import, done early)

    store.put(peer_key(identity.id), sign_json({"peer": identity.hex, "time": time.time()}, identity))
    if wait_for(store, RUN_KEY, wait_seconds) is None:
        raise TimeoutError(f"no run manifest appeared in {store.url} within {wait_seconds:.0f}s")
    manifest = fetch_manifest(store, validator)
    workdir.mkdir(parents=True, exist_ok=True)
    cls = Peer
    if adversary is not None:
        from spore.swarm.adversary import KINDS

        cls = KINDS[adversary]
    return cls(store, identity, manifest, workdir, corpus)
