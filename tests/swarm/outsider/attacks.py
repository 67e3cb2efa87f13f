"""One function per attack. Each returns a small dict of what it observed (status codes, ids).

Attacks get the outsider's view only: the store service, the manifest and the
validator's public records. Identities are fresh ed25519 keys: joining is
permissionless, so a Sybil costs nothing.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time

import torch

from spore import data as sdata
from spore import model as smodel
from spore.swarm.identity import Identity
from spore.swarm.protocol import sign_json

from .client import signed_headers
from .swarm import Run, cosine, flat

# ---------------------------------------------------------------------------
# attacks on the store service (section 2: access control, request signing, limits)
# ---------------------------------------------------------------------------

def case_sybil(run: Run, me: Identity, w: int, blob: bytes) -> dict:
    """Threat: one peer id spelled in different letter case under `updates/` (one peer, many votes).

    Upload the same signed update under the upper-case and a mixed-case spelling
    of the id, plus the canonical one. Only the canonical key may be accepted.
    """
    hx = me.hex
    spellings = {"upper": hx.upper(), "mixed": hx[:32].upper() + hx[32:]}
    out = {}
    for name, spelled in spellings.items():
        r, _ = run.store.put(me, f"updates/{w:08d}/{spelled}.upd", blob)
        out[name] = r.status
    out["canonical"] = run.put_update(me, w, blob)
    return out


def vandal(run: Run, me: Identity, w: int, victim_key: str) -> dict:
    """Threat: overwriting or deleting another peer's update in the shared store.

    Tries PUT over the victim's update, DELETE of it, a PUT claiming to be the
    victim (signer header = victim, signature by us), and an overwrite of our own
    update (write-once).
    """
    victim = victim_key.split("/")[-1][:-4]
    junk = os.urandom(1000)
    out = {"overwrite": run.store.put(me, victim_key, junk)[0].status,
           "delete": run.store.delete(me, victim_key).status}
    h = signed_headers(me, "PUT", victim_key, junk, signer=victim)
    h["Content-Length"] = str(len(junk))
    out["impersonate"] = run.store.send("PUT", "/o/" + victim_key, junk, h).status
    out["peer_file"] = run.store.put(me, f"peers/{victim}.json", b"{}")[0].status
    out["status_file"] = run.store.put(me, f"status/{w:08d}/{victim}.json", b"{}")[0].status
    return out


def forge_gather(run: Run, me: Identity, w: int) -> dict:
    """Threat: a genuinely signed gather list copied to the next window's name, through the service.

    The bytes are the validator's own signed list for w; only the key changes.
    """
    r = run.store.get(f"gather/{w:08d}.json")
    if r.status != 200:
        return {"skipped": "no list"}
    return {"copy_next": run.store.put(me, f"gather/{w + 1:08d}.json", r.body)[0].status,
            "delete": run.store.delete(me, f"gather/{w:08d}.json").status}


def replay_request(run: Run, me: Identity, w: int) -> dict:
    """Threat: replayed signed requests and forged request times.

    Sends one genuine signed PUT of our status object, then the byte-identical
    request again, then one stamped 120 s in the past, and one in the future.
    """
    body = sign_json({"window": w, "peer": me.hex, "theta": "", "train_loss": None,
                      "uploaded": False, "bytes": 0, "note": "outsider", "time": int(time.time())}, me)
    key = f"status/{w:08d}/{me.hex}.json"
    first, headers = run.store.put(me, key, body)
    again = run.store.send("PUT", "/o/" + key, body, headers)
    stale = run.store.put(me, key, body, t=int(time.time()) - 120)[0]
    future = run.store.put(me, key, body, t=int(time.time()) + 120)[0]
    return {"first": first.status, "replay": again.status, "stale": stale.status, "future": future.status}


def _raw(run: Run, head: bytes, body: bytes = b"", wait: float = 10.0) -> str:
    s = run.store.raw_socket()
    s.settimeout(wait)
    try:
        s.sendall(head + body)
        data = s.recv(200)
        return data.split(b"\r\n")[0].decode(errors="replace")
    except OSError as e:
        return f"error {e.__class__.__name__}"
    finally:
        s.close()


def malformed_requests(run: Run, me: Identity, w: int) -> dict:
    """Threat: malformed objects and requests against the store service.

    Oversized Content-Length (must be refused before the body is read), chunked
    transfer, a missing length, path traversal keys, a body shorter than its
    length, and an update-shaped object of the wrong size.
    """
    key = f"updates/{w:08d}/{me.hex}.upd"
    h = signed_headers(me, "PUT", key, b"")
    hdr = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    out = {
        "oversized": _raw(run, f"PUT /o/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {80 << 20}\r\n{hdr}\r\n".encode()),
        "chunked": _raw(run, f"PUT /o/{key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{hdr}\r\n".encode(),
                        b"5\r\nhello\r\n0\r\n\r\n"),
        "no_length": _raw(run, f"PUT /o/{key} HTTP/1.1\r\nHost: x\r\n{hdr}\r\n".encode()),
        "short_body": _raw(run, f"PUT /o/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n{hdr}\r\n".encode(),
                           b"x" * 10, wait=2.0),
    }
    for name, path in {"dotdot": "/o/updates/../run.json", "index": "/o/.store/index",
                       "abs": "/o//etc/passwd", "encoded": "/o/updates%2F..%2Frun.json"}.items():
        out[name] = run.store.send("GET", path).status
    out["alive"] = run.store.get("run.json").status
    return out


def slowloris(run: Run, n: int, seconds: float) -> dict:
    """Threat: slow-loris on the store service (connections that never finish their headers).

    Holds `n` connections open, dribbling a header byte now and then, for `seconds`,
    and checks whether an ordinary reader still gets through meanwhile.
    """
    socks, probes = [], []
    end = time.time() + seconds
    while time.time() < end:
        while len(socks) < n:
            try:
                s = socket.create_connection((run.store.host, run.store.port), timeout=2)
                s.sendall(b"GET /o/run.json HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                break
        for s in list(socks):
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                socks.remove(s)
                s.close()
        t = time.time()
        try:
            probes.append((run.store.get("run.json").status, round(time.time() - t, 2)))
        except OSError as e:
            probes.append((e.__class__.__name__, round(time.time() - t, 2)))
        time.sleep(1.0)
    for s in socks:
        s.close()
    ok = sum(1 for p in probes if p[0] == 200)
    return {"probes": len(probes), "ok": ok, "statuses": sorted({str(p[0]) for p in probes})}


# ---------------------------------------------------------------------------
# attacks through the store's filesystem (only the operator of the store folder can do these)
# ---------------------------------------------------------------------------

def fs_plant(root: str, w: int, fifo_id: str, planted_id: str, planted_blob: bytes) -> dict:
    """Threat: a FIFO or other non-regular file named like an update; files placed behind the service's back.

    Creates a FIFO and a regular file (a valid signed update) directly in the
    service's folder. Neither was received by the service, so neither may be
    listed, served, or hang a reader.
    """
    d = os.path.join(root, "updates", f"{w:08d}")
    os.makedirs(d, exist_ok=True)
    fifo = os.path.join(d, fifo_id + ".upd")
    os.mkfifo(fifo)
    with open(os.path.join(d, planted_id + ".upd"), "wb") as f:
        f.write(planted_blob)
    os.symlink("/dev/zero", os.path.join(d, (f"{7:064x}") + ".upd"))
    return {"fifo": fifo}


def fs_utime(root: str, key: str, t: float) -> dict:
    """Threat: file timestamps set by the writer (`os.utime`) to frame an honest peer as the later copy."""
    p = os.path.join(root, key)
    os.utime(p, (t, t))
    return {"key": key, "set_to": t}


def fs_copy_gather(root: str, w: int) -> dict:
    """Threat: a genuinely signed gather list copied to the next window's name (on disk, behind the service)."""
    src = os.path.join(root, "gather", f"{w:08d}.json")
    dst = os.path.join(root, "gather", f"{w + 1:08d}.json")
    if os.path.exists(dst):
        return {"skipped": "next list already there"}
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    return {"copied": dst}


def fs_delete(root: str, key: str) -> dict:
    """Threat: a published gather list deleted from the store (peers and validator must not hang)."""
    p = os.path.join(root, key)
    try:
        os.unlink(p)
        return {"deleted": key}
    except OSError as e:
        return {"error": str(e)}


# ---------------------------------------------------------------------------
# attacks with valid, signed updates (section 7: scoring)
# ---------------------------------------------------------------------------

def random_dense(run: Run, scale: float, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * scale for _, shape in run.layout]


def sybil_flood_build(run: Run, sybils: list[Identity], w: int, level: float) -> list[tuple[Identity, bytes]]:
    """Threat: hundreds of valid Sybil updates (each a different random direction, honest-sized).

    One random update is compressed once; each Sybil then gets its own random
    2-bit codes (random signs and levels on the same positions), so no two are
    copies (cosine about 0). Each is valid and signed, built a window ahead (the
    base digest is unknown then: they are out of sync, which only hurts them) and
    sent at once when window w opens. Honest peers must still be measured, and
    the validator must finish the window in time.
    """
    template = run.compress(random_dense(run, level, 1000 * w))
    g = torch.Generator().manual_seed(w)
    out = []
    for s in sybils:
        upd = []
        for tu in template:
            if tu.codes is None:
                upd.append(tu)
                continue
            upd.append(dataclasses.replace(
                tu, codes=torch.randint(0, 4, tu.codes.shape, generator=g, dtype=torch.uint8),
                tail_codes=(torch.randint(0, 4, tu.tail_codes.shape, generator=g, dtype=torch.uint8)
                            if tu.tail_codes is not None and tu.tail_codes.numel() else tu.tail_codes)))
        out.append((s, run.encode(s, w, upd, bytes(32))))
    return out


def sybil_flood_send(run: Run, blobs: list[tuple[Identity, bytes]], w: int) -> dict:
    codes = [run.put_update(s, w, b) for s, b in blobs]
    return {"sent": len(codes), "accepted": codes.count(200),
            "done_before_deadline_s": round(run.deadline(w) - time.time(), 1)}


def gradient_at_theta0(run: Run, rows: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """d loss / d theta at checkpoint 0 on public text (a few standard-library files, read directly:
    quicker than the whole corpus, and no peer's assigned pages)."""
    model = smodel.build_model(run.cfg)
    model.load_state_dict(run.theta0(), strict=False)
    L = run.manifest["train"]["seq_len"]
    root = sdata.stdlib_root()
    text = "".join((root / n).read_text(errors="replace") for n in ("argparse.py", "typing.py", "json/decoder.py"))
    toks = torch.tensor(sdata.encode(text), dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, toks.numel() - L - 2, (rows,), generator=g)
    batch = torch.stack([toks[s:s + L + 1] for s in starts.tolist()])
    model.zero_grad()
    smodel.lm_loss(model, batch).backward()
    return [p.grad.detach().clone() for _, p in model.named_parameters() if p.requires_grad]


def starvation_updates(run: Run, n: int, grad: list[torch.Tensor], scale: float, parity: int) -> list:
    """Threat: gaming the validator's measurement order and budget (screening is first-order).

    Sybil i of n sends the gradient's sign on its own share of the chunks (part
    2i + parity of 2n), at level `scale`: a first-order gain far above an honest
    update's. Shares are disjoint, and even and odd windows use disjoint halves,
    so no Sybil's update has a nonzero cosine with any other of this window or
    the previous one: none is a copy, all are measured first and use up the
    measuring budget before honest peers are measured. Returns one compressed
    update per Sybil (sign it per window with `run.encode`).
    """
    out = []
    chunk = run.params.chunk
    for i in range(n):
        dense = []
        k = 0
        for g in grad:
            mask = torch.zeros(g.numel(), dtype=torch.bool)
            for c in range(0, g.numel(), chunk):
                if k % (2 * n) == 2 * i + parity:
                    mask[c:c + chunk] = True
                k += 1
            dense.append(torch.where(mask.view_as(g), torch.sign(g) * scale, torch.zeros_like(g)))
        out.append(run.compress(dense))
    return out


def free_rider(run: Run, me: Identity, w: int) -> dict:
    """Threat: submitting the previous window's public aggregate as one's own (free-riding)."""
    rec = run.record(w - 1)
    if not rec or not rec.get("aggregated"):
        return {"skipped": "no aggregate"}
    dense = None
    for _key, blob in run.updates(w - 1):
        dec = run.decode(blob)
        if dec and dec[0].peer_id.hex() in rec["aggregated"]:
            dense = dec[1] if dense is None else [a + b for a, b in zip(dense, dec[1], strict=False)]
    if dense is None:
        return {"skipped": "no aggregate"}
    blob = run.encode(me, w, run.compress(dense), run.base_digest(w))
    return {"status": run.put_update(me, w, blob)}


def replay_old(run: Run, me: Identity, w: int, honest: set[str], back: int = 2) -> dict:
    """Threat: submitting an earlier update as one's own: an honest peer's update from window w-2,
    re-signed for window w (older than the window before, which copy detection compares with)."""
    for _key, blob in run.updates(w - back):
        dec = run.decode(blob)
        if dec and dec[0].peer_id.hex() in honest:
            out = run.encode(me, w, run.compress(dec[1]), run.base_digest(w))
            return {"victim": dec[0].peer_id.hex(),
                    "status": run.put_update(me, w, out)}
    return {"skipped": "nothing to replay"}


def wait_honest_update(run: Run, w: int, honest: set[str], until: float):
    while time.time() < until:
        for o in run.store.list(f"updates/{w:08d}/"):
            pid = o["key"].split("/")[-1][:-4]
            if pid in honest:
                r = run.store.get(o["key"])
                dec = run.decode(r.body) if r.status == 200 else None
                if dec:
                    return o["key"], dec
        time.sleep(0.1)
    return None, None


def noisy_copy(run: Run, me: Identity, w: int, victim: list[torch.Tensor], noise: float, seed: int) -> dict:
    """Threat: a copier whose update is another's plus noise, with the top-k positions re-selected.

    `noise` is the share of the energy that is noise. The noise is as sparse as
    the victim's update (same number of entries, same magnitudes, random
    positions), so re-selecting the top-k really mixes both, and the cosine of
    the result with the victim is about sqrt(1 - noise).
    """
    g = torch.Generator().manual_seed(seed)
    v = flat(victim)
    nz = v[v != 0].abs()
    idx = torch.randperm(v.numel(), generator=g)[: nz.numel()]
    z = torch.zeros_like(v)
    z[idx] = nz[torch.randperm(nz.numel(), generator=g)] * torch.sign(torch.randn(nz.numel(), generator=g))
    mix = v * (1 - noise) ** 0.5 + z * noise ** 0.5
    dense, o = [], 0
    for t in victim:
        dense.append(mix[o:o + t.numel()].view_as(t))
        o += t.numel()
    blob = run.encode(me, w, run.compress(dense), run.base_digest(w))
    sent = run.decode(blob)[1]
    return {"noise": noise, "cos_to_victim": round(cosine(sent, victim), 3),
            "status": run.put_update(me, w, blob)}


def poisoner(run: Run, me: Identity, w: int, victim: list[torch.Tensor], boost: float) -> dict:
    """Threat: poisoning within the norm limits: the negation of an honest update (cosine -1, so no
    'copy'), boosted toward the level limit, pushing the model uphill."""
    dense = [-t * boost for t in victim]
    blob = run.encode(me, w, run.compress(dense), run.base_digest(w))
    return {"status": run.put_update(me, w, blob)}


def off_data(run: Run, me: Identity, w: int, grad: list[torch.Tensor], norm_like: float) -> dict:
    """Threat: training on data other than one's own assigned pages (a real descent direction, from
    public rows nobody was assigned, at an honest update's norm)."""
    g = flat(grad)
    dense = [t * (norm_like / float(g.norm())) for t in grad]
    blob = run.encode(me, w, run.compress(dense), run.base_digest(w))
    return {"status": run.put_update(me, w, blob)}

def late_after_gather(run: Run, me: Identity, w: int) -> dict:
    """Threat: making `spore ledger audit` fail for an honest validator (timing game).

    Uploads a valid, signed update for window w just after the validator's gather
    time (deadline + grace). The validator never lists it; a later replay of the
    store by the audit does, and must reach the same verdicts anyway.
    """
    blob = run.encode(me, w, run.compress(random_dense(run, 0.003, 99)), run.base_digest(w))
    run.wait_until(run.deadline(w) + run.manifest["grace_seconds"] + 0.5)
    return {"status": run.store.put(me, f"updates/{w:08d}/{me.hex}.upd", blob)[0].status,
            "after_deadline_s": round(time.time() - run.deadline(w), 2)}
