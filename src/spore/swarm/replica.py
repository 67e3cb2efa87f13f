"""A replica of the shared parameters theta that follows a run through the store.

Peers and validators both hold one. A replica knows how to join (verified
manifest and checkpoint), how to gather a window's submissions (checking every
one, keeping the reasons for what it drops), and how to apply the aggregate.
Given the same store it arrives at bit-identical parameters on every machine.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from spore import model as M
from spore.data import Corpus, load_corpus
from spore.swarm import codec, wire
from spore.swarm.identity import Identity, parse_id
from spore.swarm.protocol import (
    MAX_JSON_BYTES,
    RUN_KEY,
    ProtocolError,
    RunManifest,
    checkpoint_keys,
    gather_key,
    open_json,
    peer_from_update_key,
    sign_json,
    update_prefix,
)
from spore.swarm.store import NotFound, Store, StoreError, TooLarge

log = logging.getLogger("spore.swarm")


@dataclass
class Submission:
    peer: bytes
    key: str
    size: int
    modified: float
    digest: str  # sha256 of the object's bytes
    header: wire.Header
    update: codec.Update


@dataclass
class Rejection:
    key: str
    peer: str  # hex, or "" when the key names no valid id
    reason: str
    detail: str


@dataclass
class Gathered:
    window: int
    accepted: list[Submission] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def fetch_manifest(store: Store, validator: bytes) -> RunManifest:
    """The run manifest, verified against the validator id we were told to trust."""
    body, _ = open_json(store.get(RUN_KEY, MAX_JSON_BYTES), signer=validator)
    return RunManifest.from_json(body)


class Replica:
    def __init__(self, store: Store, manifest: RunManifest, corpus: Corpus | None = None) -> None:
        self.store = store
        self.manifest = manifest
        self.validator = bytes.fromhex(manifest.validator)
        self.corpus = corpus if corpus is not None else load_corpus()
        if self.corpus.digest != manifest.corpus_digest:
            raise ProtocolError(
                "this machine's corpus differs from the run's (different Python standard library?): "
                f"{self.corpus.digest[:16]} != {manifest.corpus_digest[:16]}"
            )
        self.model = M.build_model(manifest.model)
        self.layout = M.parameter_layout(self.model)
        self.model_id = M.model_id(manifest.model, self.layout)
        self.plans = codec.plan_layout(self.layout, manifest.codec)
        self.update_bytes = wire.expected_size(self.plans, manifest.codec, manifest.index_coding)
        self.window = -1  # theta currently equals theta at the start of this window
        self.last_aggregate: list[torch.Tensor] | None = None  # what the last apply() subtracted (/ outer lr)

    # -- parameters ---------------------------------------------------------

    def params(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters()]

    def digest(self) -> bytes:
        return M.theta_digest(self.model)

    def dense_fp32_bytes(self) -> int:
        return 4 * sum(p.numel() for p in self.model.parameters())

    # -- checkpoints --------------------------------------------------------

    def load_checkpoint(self, window: int) -> None:
        """theta := the validator's checkpoint for the start of `window`, verified."""
        from safetensors.torch import load as load_safetensors

        weights_key, manifest_key = checkpoint_keys(window)
        body, _ = open_json(self.store.get(manifest_key, MAX_JSON_BYTES), signer=self.validator)
        if body.get("window") != window or body.get("model_id") != self.model_id.hex():
            raise ProtocolError(f"checkpoint manifest {manifest_key} is for another window or model")
        blob = self.store.get(weights_key, int(body["size"]))
        if hashlib.sha256(blob).hexdigest() != body["sha256"]:
            raise ProtocolError(f"checkpoint {weights_key} does not match its signed digest")
        tensors = load_safetensors(blob)
        names = {n for n, _ in self.layout}
        if set(tensors) != names:
            raise ProtocolError(f"checkpoint {weights_key} holds other tensors than the model")
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if tuple(tensors[n].shape) != tuple(p.shape):
                    raise ProtocolError(f"checkpoint tensor {n} has shape {tuple(tensors[n].shape)}")
                p.copy_(tensors[n])
        if self.digest().hex() != body["theta"]:
            raise ProtocolError(f"checkpoint {weights_key} does not load to its signed theta digest")
        self.window = window

    def publish_checkpoint(self, identity: Identity) -> None:
        from safetensors.torch import save as save_safetensors

        state = {n: p.detach().clone().contiguous() for n, p in self.model.named_parameters()}
        blob = save_safetensors(state)
        weights_key, manifest_key = checkpoint_keys(self.window)
        self.store.put(weights_key, blob)
        body = {
            "window": self.window,
            "model_id": self.model_id.hex(),
            "theta": self.digest().hex(),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
        }
        self.store.put(manifest_key, sign_json(body, identity))

    def latest_checkpoint(self, at_most: int) -> int | None:
        best = None
        for info in self.store.list("checkpoints/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == "manifest.json" and parts[1].isdigit():
                w = int(parts[1])
                if w <= at_most and (best is None or w > best):
                    best = w
        return best

    # -- windows --------------------------------------------------------------

    def gather(self, window: int, allowed: set[bytes] | None = None) -> Gathered:
        """Every valid on-time submission for `window` (from `allowed` peers, if given).

        Only call after manifest.gather_time(window). Objects stored after it
        are ignored (not even rejected), so every reader, whenever it lists,
        sees the same objects with the same store timestamps.
        """
        m = self.manifest
        out = Gathered(window)
        for info in self.store.list(update_prefix(window)):
            peer = peer_from_update_key(info.key, window)
            hexid = peer.hex() if peer else ""

            def reject(reason: str, detail: str, key: str = info.key, who: str = hexid) -> None:
                out.rejected.append(Rejection(key, who, reason, detail))

            if peer is None:
                reject("bad-key", "object key does not name a peer id")
                continue
            if allowed is not None and peer not in allowed:
                continue
            if info.modified + m.clock_resolution <= m.open_time(window):
                reject("early", f"stored {m.open_time(window) - info.modified:.2f}s before the window opened")
                continue
            if info.modified > m.gather_time(window):
                continue  # stored after the window was decided: it never existed for this window
            if info.modified > m.deadline(window):
                reject("late", f"stored {info.modified - m.deadline(window):.2f}s after the deadline")
                continue
            if info.size > self.update_bytes:
                reject("oversized", f"{info.size} bytes, a valid update is {self.update_bytes}")
                continue
            try:
                data = self.store.get(info.key, self.update_bytes)
            except TooLarge as e:
                reject("oversized", str(e))
                continue
            except (NotFound, StoreError) as e:
                reject("unreadable", str(e))
                continue
            try:
                header, update = wire.decode(
                    data, self.plans, expected_params=m.codec, model_id=self.model_id,
                    window=window, peer_id=peer, max_level=m.max_level,
                )
            except wire.WireError as e:
                reject(e.reason, e.detail)
                continue
            if header.steps > m.train.inner_steps:
                reject("bad-steps", f"declares {header.steps} inner steps, the run has {m.train.inner_steps}")
                continue
            out.accepted.append(
                Submission(peer, info.key, len(data), info.modified, hashlib.sha256(data).hexdigest(), header, update)
            )
        out.accepted.sort(key=lambda s: s.peer)
        for r in out.rejected:
            log.info("window %d: skipped %s (%s: %s)", window, r.key, r.reason, r.detail)
        return out

    def gather_list(self, window: int, wait_seconds: float = 0.0) -> set[bytes] | None:
        """Whose updates count in `window`: the validator's signed gather list for it
        (in the warm-up windows it is published after the validator measured them).

        Waits up to `wait_seconds` for a valid list: an object at the list's key
        that is not the validator's list for this window (a list replayed from
        another window, a forgery, a torn or oversized object) counts as not
        published yet, since the validator publishes it again when it notices.
        Raises TimeoutError after that, because guessing would split the
        network (everyone must use the same list).
        """
        key = gather_key(window)
        deadline = time.monotonic() + wait_seconds
        problem = "not published"
        while True:
            try:
                body, _ = open_json(self.store.get(key, MAX_JSON_BYTES), signer=self.validator)
                peers = body.get("peers")
                if body.get("window") == window and isinstance(peers, list) and all(
                    isinstance(p, str) for p in peers
                ):
                    return {parse_id(p) for p in peers}
                problem = f"the object at {key} is not the validator's list for window {window}"
            except NotFound:
                problem = "not published"
            except (StoreError, ProtocolError, ValueError) as e:
                problem = f"unusable ({e})"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no valid gather list for window {window}: {problem}")
            time.sleep(0.2)

    def advance(
        self, window: int, wait_seconds: float = 0.0, allowed: set[bytes] | Literal["store"] | None = "store"
    ) -> Gathered:
        """Gather window `window` under its gather list and apply it: theta(w) -> theta(w+1).

        `allowed` is the list to use when the caller already knows it (a
        validator replaying its own ledger); by default it is read from the store.
        """
        peers = self.gather_list(window, wait_seconds) if allowed == "store" else allowed
        g = self.gather(window, peers)  # type: ignore[arg-type]
        self.apply(g)
        return g

    def apply(self, gathered: Gathered, weights: list[float] | None = None) -> None:
        """theta(w+1) = theta(w) - alpha * Aggregate(gathered); no submissions: theta stays."""
        if gathered.window != self.window:
            raise RuntimeError(f"replica holds window {self.window}, cannot apply window {gathered.window}")
        self.last_aggregate = None
        if gathered.accepted:
            agg = codec.aggregate(
                [s.update for s in gathered.accepted], self.manifest.codec, self.manifest.aggregation, weights
            )
            with torch.no_grad():
                for p, a in zip(self.model.parameters(), agg, strict=True):
                    codec.outer_step(p, a, self.manifest.train.outer_lr)  # never sub_(alpha=): see codec
            self.last_aggregate = agg  # public: every reader of the window computes it
        self.window += 1

    def catch_up(
        self, to_window: int, wait_seconds: float = 0.0,
        allowed: Callable[[int], set[bytes] | None] | None = None,
    ) -> None:
        """Advance theta to the start of `to_window`: from the best checkpoint, then replay.

        `allowed(w)` gives window w's gather list when the caller knows it; by
        default each list is read from the store.
        """
        start = self.latest_checkpoint(to_window)
        if self.window < 0 or self.window > to_window or (start is not None and start > self.window):
            if start is None:
                raise ProtocolError("no checkpoint published yet")
            self.load_checkpoint(start)  # a newer checkpoint is cheaper than replaying
        while self.window < to_window:
            self.advance(self.window, wait_seconds, "store" if allowed is None else allowed(self.window))
