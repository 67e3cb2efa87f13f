"""The validator in one process, against a real local store: every rejection reason,
scoring of real updates, copy and staleness detection, gather lists and the ledger."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import torch

from spore import model as M
from spore.data import load_corpus
from spore.swarm import wire
from spore.swarm.adversary import KINDS
from spore.swarm.identity import Identity
from spore.swarm.ledger import verify_ledger
from spore.swarm.peer import Peer
from spore.swarm.protocol import RUN_KEY, gather_key, sign_json, update_key
from spore.swarm.store import LocalStore
from spore.swarm.validator import Validator, new_manifest

WINDOW = 20.0


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(max_bytes=4_000_000)


@pytest.fixture
def net(tmp_path, corpus):
    """A run whose windows all lie in the past, so gathering never waits."""
    store = LocalStore(tmp_path / "store")
    vid = Identity.from_seed(b"v" * 32)
    manifest = new_manifest(vid, M.get_preset("tiny"), windows=4, window_seconds=WINDOW, grace_seconds=0.5,
                            corpus_digest=corpus.digest)
    v = Validator.open_run(store, vid, manifest, tmp_path / "validator", corpus)
    v.manifest = dataclasses.replace(v.manifest, t0=time.time() - 10 * WINDOW)
    v.replica.manifest = v.manifest
    store.put(RUN_KEY, sign_json(v.manifest.to_json(), vid))
    return store, v, corpus, tmp_path


def put_at(store: LocalStore, key: str, data: bytes, t: float) -> None:
    store.put(key, data)
    os.utime(store.root / key, (t, t))


def make_peer(net, seed: bytes, kind: str | None = None) -> Peer:
    store, v, corpus, tmp = net
    ident = Identity.from_seed(seed * 32)
    cls = KINDS[kind] if kind else Peer
    return cls(store, ident, v.manifest, tmp / ident.hex[:8], corpus)


def upload(net, peer: Peer, window: int, data: bytes | None = None, at: float = 2.0) -> None:
    store, v, _, _ = net
    if data is None:
        data, _ = peer.produce(window)
    put_at(store, update_key(window, peer.identity.id), data, v.manifest.open_time(window) + at)


def sync_to(peer: Peer, v: Validator) -> None:
    peer.replica.catch_up(v.replica.window)


def honest_windows(net, peers: list[Peer], v: Validator, windows: int) -> None:
    """Each window: every peer catches up, trains and uploads; the validator steps."""
    for _ in range(windows):
        for p in peers:
            sync_to(p, v)
            upload(net, p, v.replica.window)
        v.step()


def test_every_rejection_reason_is_named(net):
    store, v, _, _ = net
    alice, mallory = make_peer(net, b"a"), make_peer(net, b"m")
    good, _ = alice.produce(0)
    body = good[:-64]

    def signed(b: bytes, who: Identity = mallory.identity) -> bytes:
        return b + who.sign(wire.SIGN_DOMAIN + b)

    def mallorys(b: bytes) -> bytes:
        return signed(b[:16] + mallory.identity.id + b[48:])

    level_at = wire.HEADER.size  # first tensor's first level
    cases = {
        # reason: (uploader, bytes, seconds after the window opened)
        "bad-signature": (alice, good[:-1] + bytes([good[-1] ^ 1]), 2.0),
        "wrong-peer": (alice, mallorys(body), 2.0),
        "wrong-window": (mallory, mallorys(body[:8] + (1).to_bytes(8, "little") + body[16:]), 2.0),
        "wrong-model": (mallory, mallorys(body[:48] + b"X" * 32 + body[80:]), 2.0),
        "non-finite": (mallory, mallorys(body[:level_at] + b"\x00\x00\xc0\x7f" + body[level_at + 4 :]), 2.0),
        "absurd-scale": (mallory, mallorys(body[:level_at] + torch.tensor([-1e6, -1.0, 1.0, 1e6]).numpy().tobytes()
                                           + body[level_at + 16 :]), 2.0),
        "bad-size": (mallory, mallorys(body[:-16]), 2.0),
        "oversized": (mallory, b"\0" * (v.replica.update_bytes + 1), 2.0),
        "truncated": (mallory, b"SPRU", 2.0),
        "early": (alice, good, -5.0),
        "late": (alice, good, WINDOW + 0.3),  # after the deadline, before gather time (grace 0.5 s)
    }
    for reason, (who, data, at) in cases.items():
        for info in store.list("updates/"):
            store.delete(info.key)
        upload(net, who, 0, data, at)
        g = v.replica.gather(0)
        assert [r.reason for r in g.rejected] == [reason], (reason, g.rejected)
        assert not g.accepted
    put_at(store, "updates/00000000/not-an-id.upd", good, v.manifest.open_time(0) + 1)
    assert "bad-key" in [r.reason for r in v.replica.gather(0).rejected]
    # Stored after gather time: it never existed for the window (every reader, whenever it
    # lists, sees the same objects; an auditor too).
    for info in store.list("updates/"):
        store.delete(info.key)
    upload(net, alice, 0, good, WINDOW + 1.0)
    g = v.replica.gather(0)
    assert not g.accepted and not g.rejected


def test_validator_scores_real_updates_and_keeps_adversaries_out(net):
    store, v, _, _ = net
    honest = [make_peer(net, bytes([65 + i])) for i in range(3)]
    noise, stale, copier = make_peer(net, b"n", "noise"), make_peer(net, b"s", "stale"), make_peer(net, b"c", "copier")
    records = []
    for w in range(3):
        for p in honest:
            sync_to(p, v)
            upload(net, p, w, at=1.0)
        sync_to(noise, v)
        upload(net, noise, w, at=1.5)
        stale.replica.window = w  # it never applied an aggregate: theta is still theta(0)
        upload(net, stale, w, at=1.5)
        sync_to(copier, v)
        victim = next(s for s in v.replica.gather(w).accepted if s.peer == honest[w].identity.id)
        stolen = copier.encode(w, copier.perturb(w, victim.update))
        upload(net, copier, w, stolen, at=3.0)  # after the original
        records.append(v.step())
    ids = {p.identity.hex for p in honest}
    # Honest updates always lower the loss on rows they never saw; the own-pages test is a
    # noisy measurement this early in training (the EMA smooths it), but they do pass it...
    assert all(rec["scores"][i]["gradient_score"] > 0 for rec in records for i in ids)
    assert any(rec["scores"][i]["outcome"] == 1 for rec in records for i in ids)
    for rec in records:
        scores = rec["scores"]
        # ...cheaters never do.
        assert scores[noise.identity.hex]["outcome"] == -1
        assert scores[copier.identity.hex]["outcome"] == -1
        assert scores[stale.identity.hex]["behind"] == rec["window"]  # trained from theta(0)
        if rec["window"] > 0:  # in window 0 theta(0) is current: it is simply an honest peer then
            assert scores[stale.identity.hex]["outcome"] == -1
        assert scores[copier.identity.hex]["copy_of"] == honest[rec["window"]].identity.hex
    # After the 2-window warm-up the gather list holds honest peers only.
    # (It may be empty: with only two noisy windows behind them, honest peers can still
    # have an EMA <= 0; then nobody's update counts that window, which stalls but never poisons.)
    assert set(records[1]["gather_next"]) <= ids
    assert set(records[2]["gather"]) == set(records[1]["gather_next"])
    assert set(records[2]["aggregated"]) <= ids
    for adv in (noise, stale, copier):
        assert records[-1]["weights"][adv.identity.hex] == 0.0
    # The published gather list is the one in the ledger, and the ledger verifies.
    assert store.get(gather_key(2), 1 << 20)
    assert verify_ledger(v.out / "ledger.sqlite", v.identity.id).ok


def test_restarted_validator_resumes_its_history(net):
    store, v, corpus, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(2)]
    honest_windows(net, peers, v, 2)
    states = {k: dataclasses.asdict(s) for k, s in v.states.items()}
    v.ledger.close()
    again = Validator.resume(store, v.identity, v.out, corpus)
    assert again.replica.window == 2 and again.replica.digest() == v.replica.digest()
    assert {k: dataclasses.asdict(s) for k, s in again.states.items()} == states
    honest_windows(net, peers, again, 1)
    r = verify_ledger(again.out / "ledger.sqlite", again.identity.id)
    assert r.ok and r.records == 4  # genesis + windows 0, 1, 2: nothing lost, nothing twice


def test_aggregate_is_what_every_peer_computes(net):
    _, v, _, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(3)]
    honest_windows(net, peers, v, 3)
    for p in peers:
        sync_to(p, v)
        assert p.replica.digest() == v.replica.digest()
    # and a stranger joining now, from the checkpoint and the gather lists, too
    late = make_peer(net, b"z")
    late.replica.catch_up(3)
    assert late.replica.digest() == v.replica.digest()


# -- issue 9: lists, slow peers, audit --------------------------------------------------


def ledger_bodies(v: Validator) -> tuple[dict, list[dict]]:
    records = list(v.ledger.records())
    # The `net` fixture moves t0 into the past after the genesis record; audit with the run's manifest.
    genesis = {**records[0].body, "manifest": v.manifest.to_json()}
    return genesis, [r.body for r in records if r.kind == "window"]


def test_a_replayed_or_deleted_gather_list_is_put_back_and_peers_wait_for_it(net):
    store, v, _, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(2)]
    honest_windows(net, peers, v, 2)  # G(0), G(1) (warm-up, after measuring) and G(2) are published
    g1 = store.get(gather_key(1), 1 << 20)
    store.put(gather_key(2), g1)  # a genuinely signed list, under the next window's name
    late = make_peer(net, b"z")
    with pytest.raises(TimeoutError, match="not the validator's list for window 2"):
        late.replica.catch_up(3, wait_seconds=0.5)  # a reader never takes it for G(2)
    store.delete(gather_key(0))
    honest_windows(net, peers, v, 1)  # the validator notices and publishes its own lists again
    body = store.get(gather_key(2), 1 << 20)
    assert b'"window":2' in body
    fresh = make_peer(net, b"y")
    fresh.replica.catch_up(3)
    assert fresh.replica.digest() == v.replica.digest()


def test_a_slow_peer_sends_the_steps_it_managed_and_is_measured_on_exactly_those(net):
    _, v, _, _ = net
    slow, fast = make_peer(net, b"s"), make_peer(net, b"f")
    data, _ = slow.produce(0, steps=3)
    header = wire.read_header(data)
    assert header.steps == 3
    upload(net, slow, 0, data)
    upload(net, fast, 0)
    rec = v.step()
    assert {s["peer"] for s in rec["submissions"]} == {slow.identity.hex, fast.identity.hex}
    assert rec["scores"][slow.identity.hex]["gradient_score"] > 0
    # More steps than the run has is refused with a reason.
    sync_to(slow, v)
    bad = slow.make_update(1, [torch.zeros(pl.shape) for pl in slow.replica.plans], steps=99)
    upload(net, slow, 1, bad)
    assert any(r["reason"] == "bad-steps" for r in v.step()["rejected"])


@pytest.mark.parametrize("mode", ["favour", "drop"])
def test_the_audit_recomputes_an_honest_validator_and_names_a_dishonest_one(net, mode):
    from spore.swarm.audit import audit

    store, v, corpus, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(3)]
    honest_windows(net, peers, v, 3)
    genesis, windows = ledger_bodies(v)
    assert audit(store, genesis, windows, corpus).ok
    v.dishonest = (mode, peers[0].identity.hex)
    honest_windows(net, peers, v, 1)
    genesis, windows = ledger_bodies(v)
    result = audit(store, genesis, windows, corpus)
    assert not result.ok and result.window == 3
    assert result.field == ("submissions" if mode == "drop" else f"scores.{peers[0].identity.hex[:16]}.random_after")
    # Rewriting a decision in a record is caught too, at that record.
    genesis, windows = ledger_bodies(v)
    windows = windows[:3]
    windows[2] = {**windows[2], "gather_next": []}
    assert audit(store, genesis, windows, corpus).field == "gather_next"


def flooded_window(net, honest: int, noise: int):
    """Window 1 of a network of `honest` peers (window 0 trained) with `noise` noise ids uploading too."""
    _, v, _, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(honest)]
    honest_windows(net, peers, v, 1)
    for p in [make_peer(net, bytes([100 + i]), "noise") for i in range(noise)]:
        upload(net, p, 1)
    for p in peers:
        sync_to(p, v)
        upload(net, p, 1)
    return peers, v.replica.gather(1)


def test_under_a_flood_established_peers_are_measured_first(net):
    from spore.swarm.scoring import PeerState
    from spore.swarm.validator import measurement_order

    _, v, _, _ = net
    peers, g = flooded_window(net, honest=2, noise=6)
    states = {peers[0].identity.hex: PeerState(mu=30, sigma=1, ema=0.5, sync=1.0)}
    order = measurement_order(g.accepted, states, {s.peer.hex(): 0.0 for s in g.accepted}, {}, v.link(1))
    assert order[0].peer == peers[0].identity.id  # established: first, whatever the flood
    screen = {s.peer.hex(): (0.1 if s.peer == peers[1].identity.id else 0.0) for s in g.accepted}
    order = measurement_order(g.accepted, {}, screen, {}, v.link(1))
    assert order[0].peer == peers[1].identity.id  # a newcomer that really descends comes before noise


def test_a_flood_of_barely_useful_ids_cannot_hide_an_honest_newcomer(net):
    """100 noise ids of a flood once set the bar from their own (tiny, positive) screening scores, and
    the honest newcomers waited behind them in random order. The bar now follows the best newcomer's
    efficiency (screening score per unit norm), and a peer that failed its last window waits behind
    one that has not been measured."""
    from spore.swarm.scoring import PeerState
    from spore.swarm.validator import measurement_order

    peers, g = flooded_window(net, honest=3, noise=6)
    newcomer, failed, _ = (p.identity.hex for p in peers)
    screen = {s.peer.hex(): 1e-4 for s in g.accepted}  # every flood id "helps", barely
    screen[newcomer] = screen[failed] = 0.05
    for trial in range(8):  # whatever the window's randomness
        link = bytes([trial]) * 32
        order = measurement_order(g.accepted, {}, screen, {}, link)
        assert {order[0].peer.hex(), order[1].peer.hex()} == {newcomer, failed}
        states = {failed: PeerState(ema=-0.3)}
        order = measurement_order(g.accepted, states, screen, {}, link)
        assert [s.peer.hex() for s in order[:2]] == [newcomer, failed]


def test_an_update_replayed_windows_later_under_another_id_is_a_copy(net):
    """An outsider re-signed an honest peer's update from two windows back as its own."""
    _, v, _, _ = net
    peers = [make_peer(net, bytes([65 + i])) for i in range(2)]
    honest_windows(net, peers, v, 1)
    old = next(s for s in v.replica.gather(0).accepted if s.peer == peers[0].identity.id)
    honest_windows(net, peers, v, 1)
    thief = make_peer(net, b"t", "noise")
    sync_to(thief, v)
    for p in peers:
        sync_to(p, v)
        upload(net, p, 2)
    upload(net, thief, 2, thief.encode(2, old.update))
    rec = v.step()
    assert rec["scores"][thief.identity.hex]["copy_of"] == peers[0].identity.hex
    assert rec["scores"][thief.identity.hex]["outcome"] == -1
