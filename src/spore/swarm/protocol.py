"""The swarm protocol: store keys, signed JSON, the run manifest, window times.

Everything here is shared vocabulary between peers, validators and observers;
docs/protocol.md is the outsider's version of this file.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from spore.model import ModelConfig, TrainConfig
from spore.swarm.codec import CodecParams
from spore.swarm.identity import Identity, parse_id, verify

JSON_DOMAIN = b"spore/json/v1\0"
MAX_JSON_BYTES = 1 << 20

# ---------------------------------------------------------------------------
# Keys


RUN_KEY = "run.json"


def peer_key(peer: bytes) -> str:
    return f"peers/{peer.hex()}.json"


def update_key(window: int, peer: bytes) -> str:
    return f"updates/{window:08d}/{peer.hex()}.upd"


def update_prefix(window: int) -> str:
    return f"updates/{window:08d}/"


def status_key(window: int, peer: bytes) -> str:
    return f"status/{window:08d}/{peer.hex()}.json"


def status_prefix(window: int) -> str:
    return f"status/{window:08d}/"


def record_key(window: int) -> str:
    return f"windows/{window:08d}.json"


def gather_key(window: int) -> str:
    """The validator's gather list for `window`: whose updates everyone aggregates."""
    return f"gather/{window:08d}.json"


def checkpoint_keys(window: int) -> tuple[str, str]:
    """(weights, manifest) of the checkpoint holding theta at the start of `window`."""
    return f"checkpoints/{window:08d}/model.safetensors", f"checkpoints/{window:08d}/manifest.json"


def peer_from_update_key(key: str, window: int) -> bytes | None:
    prefix = update_prefix(window)
    if not key.startswith(prefix) or not key.endswith(".upd"):
        return None
    try:
        return parse_id(key[len(prefix) : -len(".upd")])
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Signed JSON objects


class ProtocolError(ValueError):
    pass


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign_json(body: dict[str, Any], identity: Identity) -> bytes:
    msg = canonical(body)
    sig = identity.sign(JSON_DOMAIN + msg)
    return canonical({"body": body, "signer": identity.hex, "signature": sig.hex()}) + b"\n"


def open_json(data: bytes, signer: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """Parse a signed JSON object; verify its signature (and its signer, if given)."""
    try:
        env = json.loads(data)
        body, who, sig = env["body"], parse_id(env["signer"]), bytes.fromhex(env["signature"])
    except (ValueError, KeyError, TypeError) as e:
        raise ProtocolError(f"not a signed spore object: {e}") from None
    if not isinstance(body, dict):
        raise ProtocolError("signed object body is not a JSON object")
    if signer is not None and who != signer:
        raise ProtocolError(f"signed by {who.hex()[:16]}, expected {signer.hex()[:16]}")
    if not verify(who, sig, JSON_DOMAIN + canonical(body)):
        raise ProtocolError("signature does not verify")
    return body, who


# ---------------------------------------------------------------------------
# The run manifest


@dataclass(frozen=True)
class RunManifest:
    """What every participant must agree on; published once, signed by the validator."""

    run_id: str
    validator: str  # hex id of the validator that signs records and checkpoints
    t0: float  # window 0 opens at t0 (unix seconds)
    window_seconds: float
    grace_seconds: float  # readers wait this long after a deadline before listing
    windows: int
    preset: str
    model: ModelConfig
    train: TrainConfig
    codec: CodecParams
    index_coding: int
    run_seed: str  # hex; feeds the public sampler
    corpus_digest: str
    checkpoint_every: int
    aggregation: str = "all"
    warmup_windows: int = 2
    gather_size: int = 15
    # S3 (and many S3-compatible stores) report LastModified in whole seconds,
    # rounded down: an object stored at 12.7 reads 12.0. A stamp t means the
    # object landed in [t, t + clock_resolution).
    clock_resolution: float = 1.0
    # The largest quantization level (or dense value) a valid update may carry.
    # An honest pseudo-gradient is about inner_lr * inner_steps per window.
    max_level: float = 1.0
    # SHA-256 head of the validator's randomness chain (randomness.py), hex;
    # each window record reveals that window's link.
    randomness_commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def open_time(self, window: int) -> float:
        return self.t0 + window * self.window_seconds

    def deadline(self, window: int) -> float:
        return self.t0 + (window + 1) * self.window_seconds

    def gather_time(self, window: int) -> float:
        """When window `window`'s submissions are final and may be gathered."""
        return self.deadline(window) + self.grace_seconds

    def window_at(self, t: float) -> int:
        """The window open at time t (negative before the run starts)."""
        return int((t - self.t0) // self.window_seconds)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"]["betas"] = list(self.train.betas)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunManifest:
        try:
            train = dict(d["train"])
            train["betas"] = tuple(train["betas"])
            return cls(
                **{k: v for k, v in d.items() if k not in ("model", "train", "codec")},
                model=ModelConfig(**d["model"]),
                train=TrainConfig(**train),
                codec=CodecParams(**d["codec"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"invalid run manifest: {e}") from None


def sleep_until(t: float) -> None:
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))
