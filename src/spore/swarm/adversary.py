"""Adversarial peers, built in for tests and demos (`--adversary KIND`).

Each is a peer that follows the protocol where it must (to stay in the game)
and cheats where a real miner has tried to. Templar's history is the list:
free riding, copying others' updates, poisoning, stale models, late uploads,
forged identities, malformed payloads, and the zero-then-random exploit of
Templar issue #108 (negative scores multiplied into a positive weight).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable

import numpy as np
import torch

from spore.swarm import codec, wire
from spore.swarm.identity import Identity
from spore.swarm.peer import Peer, WindowResult
from spore.swarm.protocol import gather_key, sleep_until, update_key, update_prefix
from spore.swarm.replica import peer_from_update_key
from spore.swarm.store import open_store

log = logging.getLogger("spore.swarm.adversary")


class Adversary(Peer):
    kind = "honest"

    def rng(self, window: int) -> random.Random:
        return random.Random(f"{self.identity.hex}/{window}")

    def encode(self, window: int, update: codec.Update, claim: bytes | None = None) -> bytes:
        """Serialize and sign with our own key; `claim` puts another peer's id in the header."""
        m = self.manifest
        rep = self.replica
        header = wire.Header(window, self.identity.id, rep.model_id, rep.digest(), m.codec, m.index_coding)
        data = wire.encode(update, header, self.identity)
        if claim is None:
            return data
        forged = data[:16] + claim + data[48:-64]
        return forged + self.identity.sign(wire.SIGN_DOMAIN + forged)

    def noise_update(self, window: int, scale: float) -> codec.Update:
        g = torch.Generator().manual_seed(self.rng(window).getrandbits(63))
        return [
            codec.compress(torch.randn(pl.shape, generator=g) * scale, pl, self.manifest.codec)
            for pl in self.replica.plans
        ]

    def honest_scale(self) -> float:
        """Roughly the magnitude an honest update's kept entries have (lr x H)."""
        t = self.manifest.train
        return t.inner_lr * t.inner_steps / 2.5


class FreeRider(Adversary):
    """Uploads an all-zero update on even windows and nothing on odd ones."""

    kind = "free-rider"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        if window % 2:
            return None, None
        zeros = [codec.compress(torch.zeros(pl.shape), pl, self.manifest.codec) for pl in self.replica.plans]
        return self.encode(window, zeros), None


class Copier(Adversary):
    """Waits for another peer's upload, adds small noise, re-publishes it as its own."""

    kind = "copier"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        """Copy the best-looking update: a peer on the current gather list, else the median-norm one."""
        m, rep = self.manifest, self.replica
        try:
            favourites = rep.gather_list(window) or set()
        except Exception:
            favourites = set()
        give_up = m.deadline(window) - 0.3
        while time.time() < give_up:
            seen: list[tuple[bool, float, bytes, codec.Update]] = []
            for info in self.store.list(update_prefix(window)):
                victim = peer_from_update_key(info.key, window)
                if victim is None or victim == self.identity.id:
                    continue
                try:
                    data = self.store.get(info.key, rep.update_bytes)
                    _, update = wire.decode(data, rep.plans, expected_params=m.codec, model_id=rep.model_id)
                except Exception:
                    continue
                norm = codec.update_norm(update)
                if norm > 0:
                    seen.append((victim in favourites, norm, victim, update))
            if len(seen) >= 2 or (seen and time.time() > give_up - 1.0):
                seen.sort(key=lambda x: (not x[0], x[1]))
                _, _, victim, update = next((x for x in seen if x[0]), seen[len(seen) // 2])
                return self.encode(window, self.perturb(window, update)), None
            time.sleep(0.1)
        return None, None

    def perturb(self, window: int, update: codec.Update) -> codec.Update:
        """The stolen update plus a little noise, re-compressed: not byte-identical any more."""
        m = self.manifest
        g = torch.Generator().manual_seed(window)
        out = []
        for u in update:
            dense = codec.decompress(u, m.codec)
            dense = dense + torch.randn(dense.shape, generator=g) * 0.05 * float(dense.abs().max())
            out.append(codec.compress(dense, u.plan, m.codec))
        return out


class Noise(Adversary):
    """A random update of plausible norm: no training at all."""

    kind = "noise"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        return self.encode(window, self.noise_update(window, self.honest_scale())), None


class Poisoner(Adversary):
    """Trains, then sends its update sign-flipped, or sign-flipped and scaled x100."""

    kind = "poisoner"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        pseudo_gradient, loss = self.train(window)
        factor = -100.0 if window % 2 else -1.0
        bad = [factor * d for d in pseudo_gradient]
        update = [codec.compress(d, pl, self.manifest.codec) for d, pl in zip(bad, self.replica.plans, strict=True)]
        return self.encode(window, update), loss


class Stale(Adversary):
    """Never applies the aggregates: keeps training from the parameters it joined with."""

    kind = "stale"

    def follow(self, window: int) -> None:
        self.replica.window += 1  # pretend to move on; theta stays where it was


class Late(Adversary):
    """Trains honestly, uploads after the deadline."""

    kind = "late"

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        sleep_until(self.manifest.deadline(window) + 0.3)
        if payload is not None:
            self.store.put(update_key(window, self.identity.id), payload)
        return WindowResult(window, loss, payload is not None, len(payload or b""), "uploaded late on purpose")


class Forger(Adversary):
    """Claims another peer's id in the header without holding its key."""

    kind = "forger"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        others = sorted(
            bytes.fromhex(i.key[len("peers/") : -len(".json")])
            for i in self.store.list("peers/")
            if i.key[len("peers/") : -len(".json")] != self.identity.hex
        )
        if not others:
            return None, None
        pseudo_gradient, loss = self.train(window)
        plans = self.replica.plans
        update = [codec.compress(d, pl, self.manifest.codec) for d, pl in zip(pseudo_gradient, plans, strict=True)]
        return self.encode(window, update, claim=others[window % len(others)]), loss


class Malformed(Adversary):
    """Validly signed garbage, in turn: random body bytes, positions beyond a chunk's end, a NaN level."""

    kind = "malformed"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        m, rep, rng = self.manifest, self.replica, self.rng(window)
        body = bytearray(self.encode(window, self.noise_update(window, self.honest_scale()))[:-64])
        trick = window % 3
        if trick == 0:  # garbage of exactly the right size
            body[wire.HEADER.size :] = rng.randbytes(len(body) - wire.HEADER.size)
        elif trick == 1:  # a short chunk (a norm weight: 128 long) whose positions point past its end
            pos = wire.HEADER.size
            for plan in rep.plans:
                if plan.mode == codec.FLAT and plan.full_chunks == 0:
                    low = wire.ef_low_bits(m.codec.chunk, plan.k_tail)
                    start = pos + 16 + wire.packed_len(plan.k_tail, low)
                    bits = np.zeros(plan.k_tail + (m.codec.chunk >> low), dtype=np.uint8)
                    bits[-plan.k_tail - 1 : -1] = 1  # every high part near the top of the 4096 range
                    packed = np.packbits(bits, bitorder="little").tobytes()
                    body[start : start + len(packed)] = packed
                    break
                pos += wire.tensor_body_len(plan, m.codec, m.index_coding)
        else:  # NaN as a quantization level
            body[wire.HEADER.size : wire.HEADER.size + 4] = b"\x00\x00\xc0\x7f"
        return bytes(body) + self.identity.sign(wire.SIGN_DOMAIN + bytes(body)), None


class ZeroThenRandom(Adversary):
    """Templar #108: zeros for three windows (negative scores), then random updates."""

    kind = "zero-then-random"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        if window < 3:
            zeros = [codec.compress(torch.zeros(pl.shape), pl, self.manifest.codec) for pl in self.replica.plans]
            return self.encode(window, zeros), None
        return self.encode(window, self.noise_update(window, 5 * self.honest_scale())), None


# ---------------------------------------------------------------------------
# Attacks an outsider found by reading docs/protocol.md (issue 9's table).


class CaseSybil(Adversary):
    """One peer, many votes: a harmful update (random, at the largest scale the run allows) under
    its id and again under upper-case and mixed-case spellings of it. Its subclasses send the same
    payload and attack the store in other ways."""

    kind = "case-sybil"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        # top-k of N(0, 1) keeps |x| of about 2.5-3.5: levels just under max_level
        return self.encode(window, self.noise_update(window, 0.25 * self.manifest.max_level)), None

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        result = super().upload(window, payload, loss)
        if payload is None:
            return result
        h = self.identity.hex
        for spelling in (h.upper(), h[:32].upper() + h[32:], "".join(c.upper() if i % 2 else c
                                                                  for i, c in enumerate(h))):
            self.try_store(lambda k=f"updates/{window:08d}/{spelling}.upd": self.store.put(k, payload))
        return result

    def try_store(self, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except Exception as e:  # the store service refuses; that is the point
            log.info("%s: refused: %s", self.kind, e)
            return False


class ClockForger(CaseSybil):
    """Uploads after the deadline and makes it look on time: backdated request times, and on a
    plain folder store `os.utime` on its own file (early) and on everyone else's (late, to frame
    them as the copier)."""

    kind = "clock-forger"

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        return Peer.produce(self, window, steps)  # honest work, uploaded late

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        if payload is None:
            return WindowResult(window, loss, False, 0)
        sleep_until(self.manifest.deadline(window) + 0.3)
        self.try_store(lambda: self.store.put(update_key(window, self.identity.id), payload))
        root = getattr(self.store, "root", None)
        if root is not None:  # a plain directory: every writer can set any file's times
            early = self.manifest.open_time(window) + 0.5
            late = self.manifest.deadline(window) - 0.1
            for info in self.store.list(update_prefix(window)):
                t = early if info.key == update_key(window, self.identity.id) else late
                self.try_store(lambda k=info.key, t=t: os.utime(root / k, (t, t)))
        return WindowResult(window, loss, True, len(payload), "uploaded late, clock forged")


class ListReplayer(CaseSybil):
    """Copies the validator's genuinely signed gather list to the next window's name, and deletes
    the published lists."""

    kind = "list-replayer"

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        result = super(CaseSybil, self).upload(window, payload, loss)
        try:
            current = self.store.get(gather_key(window), 1 << 20)
        except Exception:
            return result
        self.try_store(lambda: self.store.put(gather_key(window + 1), current))
        if window % 2:
            self.try_store(lambda: self.store.delete(gather_key(window)))
        return result


class FifoPlanter(CaseSybil):
    """Plants a FIFO named like its update (a reader that opens it blocks forever) on a folder store;
    through a store service it can only upload bytes, so it uploads nothing."""

    kind = "fifo"

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        root = getattr(self.store, "root", None)
        if root is not None:
            path = root / update_key(window, self.identity.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.try_store(lambda: os.mkfifo(path))
        return WindowResult(window, loss, False, 0, "planted a FIFO")


class Vandal(CaseSybil):
    """Overwrites other peers' updates with its own bytes, then deletes them."""

    kind = "vandal"

    def upload(self, window: int, payload: bytes | None, loss: float | None) -> WindowResult:
        result = super(CaseSybil, self).upload(window, payload, loss)
        give_up = self.manifest.deadline(window) - 0.2
        hit: set[str] = set()
        while time.time() < give_up:
            for info in self.store.list(update_prefix(window)):
                if info.key in hit or info.key == update_key(window, self.identity.id):
                    continue
                hit.add(info.key)
                if payload is not None:
                    self.try_store(lambda k=info.key: self.store.put(k, payload))
                self.try_store(lambda k=info.key: self.store.delete(k))
            time.sleep(0.2)
        return result


class SybilFlood(Adversary):
    """Hundreds of valid updates, each under its own freshly generated key (`SPORE_SYBILS`, default 40):
    plausible-norm noise, and copies of one another."""

    kind = "sybil-flood"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        count = int(os.environ.get("SPORE_SYBILS", "40"))
        self.sybils = [Identity.from_seed(hashlib.sha256(self.identity.id + i.to_bytes(4, "little")).digest())
                       for i in range(count)]

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        m, rep = self.manifest, self.replica
        base = self.noise_update(window, self.honest_scale())
        for i, sybil in enumerate(self.sybils):
            update = base if i % 2 else self.noise_update(window * 1000 + i, self.honest_scale())
            header = wire.Header(window, sybil.id, rep.model_id, rep.digest(), m.codec, m.index_coding)
            data = wire.encode(update, header, sybil)
            try:
                open_store(self.store.url, sybil).put(update_key(window, sybil.id), data)
            except Exception as e:
                log.info("sybil upload refused: %s", e)
        return self.encode(window, base), None

    def noise_update(self, window: int, scale: float) -> codec.Update:
        g = torch.Generator().manual_seed(window)
        return [codec.compress(torch.randn(pl.shape, generator=g) * scale, pl, self.manifest.codec)
                for pl in self.replica.plans]


class AggregateReplayer(Adversary):
    """Submits the previous window's public aggregate, re-compressed, as its own update."""

    kind = "aggregate-replayer"

    def follow(self, window: int) -> None:
        before = [p.detach().clone() for p in self.replica.params()]
        super().follow(window)
        lr = self.manifest.train.outer_lr
        self.last_aggregate = [(b - p.detach()) / lr for b, p in zip(before, self.replica.params(), strict=True)]

    def produce(self, window: int, steps: int | None = None) -> tuple[bytes | None, float | None]:
        agg = getattr(self, "last_aggregate", None)
        if agg is None or not any(bool(a.any()) for a in agg):
            return super().produce(window, steps)  # nothing public yet: train honestly
        update = [codec.compress(a, pl, self.manifest.codec) for a, pl in zip(agg, self.replica.plans, strict=True)]
        return self.encode(window, update), None


class NoisyCopier(Copier):
    """Copies another peer's update plus noise of 30% of its norm, with positions re-selected by top-k."""

    kind = "noisy-copier"

    def perturb(self, window: int, update: codec.Update) -> codec.Update:
        g = torch.Generator().manual_seed(window)
        out = []
        for u in update:
            dense = codec.decompress(u, self.manifest.codec)
            noise = torch.randn(dense.shape, generator=g)
            noise *= 0.3 * float(dense.norm()) / max(float(noise.norm()), 1e-12)
            out.append(codec.compress(dense + noise, u.plan, self.manifest.codec))
        return out


class OffData(Adversary):
    """Trains honestly, but on another id's pages (e.g. data it prefers), never its own."""

    kind = "off-data"

    def train(self, window: int, steps: int | None = None) -> tuple[list[torch.Tensor], float]:
        real = self.identity
        decoy = Identity.from_seed(hashlib.sha256(b"off-data" + real.id).digest())
        self.identity = decoy  # the sampler keys the batches by this id
        try:
            return super().train(window, steps)
        finally:
            self.identity = real


KINDS: dict[str, type[Adversary]] = {
    cls.kind: cls
    for cls in (FreeRider, Copier, Noise, Poisoner, Stale, Late, Forger, Malformed, ZeroThenRandom,
                CaseSybil, ClockForger, ListReplayer, FifoPlanter, Vandal, SybilFlood, AggregateReplayer,
                NoisyCopier, OffData)
}
