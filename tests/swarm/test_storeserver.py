"""The store service as a specification: a real server process on loopback, real signed requests.

Each adversary is named for what it tries (issue 9): writing or deleting other
peers' objects, overwriting its own update after the fact, replaying a signed
request, choosing its own timestamp, flooding the service with a huge body,
and planting FIFOs or links in the served folder.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import pytest

from spore.swarm.identity import Identity, parse_id
from spore.swarm.store import NotFound, StoreError, TooLarge, open_store
from spore.swarm.storeserver import Limits, key_owner, request_message, sign_request, start_store_server

MAX_BODY, MAX_PEER_BODY = 4096, 1024


class Running(NamedTuple):
    url: str
    root: Path
    validator: Identity
    proc: subprocess.Popen[bytes]


def _start(root: Path) -> Running:
    validator = Identity.generate()
    url, proc = start_store_server(root, validator.hex,
                                   limits=Limits(max_body_bytes=MAX_BODY, max_peer_body_bytes=MAX_PEER_BODY))
    return Running(url, root, validator, proc)


@pytest.fixture
def service(tmp_path):
    running = _start(tmp_path / "served")
    yield running
    running.proc.kill()
    running.proc.wait()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    """One service for the table of write rules; every case there uses keys of its own."""
    running = _start(tmp_path_factory.mktemp("shared") / "served")
    yield running
    running.proc.kill()
    running.proc.wait()


def send(url: str, method: str, target: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, the service's reason) of one raw request."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    return r.status, json.loads(raw).get("error", "") if raw else ""


def signed_put(url: str, who: Identity, key: str, body: bytes, now: float | None = None,
               extra: dict[str, str] | None = None) -> tuple[int, str]:
    headers = sign_request(who, "PUT", key, body, time.time() if now is None else now)
    return send(url, "PUT", f"/o/{key}", body, {**headers, **(extra or {})})


# -- ids have one spelling -----------------------------------------------------------------

ID = "0123456789abcdef" * 4


@pytest.mark.parametrize("text, reason", [
    (ID, None),
    (ID.upper(), "upper-case"),
    (ID[:-1] + "F", "upper-case"),
    (ID[:-1], "63 characters"),
    (ID + "\n", "65 characters"),
    (" " + ID[1:], "other than 0-9 a-f"),
    ("g" * 64, "other than 0-9 a-f"),
    (b"\x01" * 32, "a string"),
])
def test_a_peer_id_has_exactly_one_spelling(text, reason):
    if reason is None:
        assert parse_id(text).hex() == text
    else:
        with pytest.raises(ValueError, match=reason) as refused:
            parse_id(text)
        assert "64 lower-case hex digits" in str(refused.value)  # the message names the rule


# -- who may write what (the pure rule) ----------------------------------------------------

V, P = "f" * 64, ID


@pytest.mark.parametrize("key, owner", [
    (f"peers/{P}.json", P),
    (f"updates/00000007/{P}.upd", P),
    (f"status/00000007/{P}.json", P),
    (f"updates/00000007/{P.upper()}.upd", V),  # not a peer's key: the validator's
    (f"updates/7/{P}.upd", V),
    (f"updates/00000007/{P}.upd.bak", V),
    (f"updates/00000007/{P}/x.upd", V),
    ("run.json", V),
    ("gather/00000007.json", V),
    ("windows/00000007.json", V),
    ("checkpoints/00000007/model.safetensors", V),
    ("anything/else", V),
])
def test_each_key_has_one_writer(key, owner):
    assert key_owner(key, V) == owner


def test_the_signed_message_is_the_one_docs_protocol_md_gives():
    """Section 2's example, byte for byte: what a client in another language must sign."""
    body_sha256 = hashlib.sha256(b"{}").hexdigest()
    message = request_message("PUT", "run.json", body_sha256, 1700000000, "0" * 32)
    assert message == (b"spore/store-request/v1\0PUT\nrun.json\n"
                       b"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n"
                       b"1700000000\n00000000000000000000000000000000")
    assert len(message) == 144
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    assert message.decode().replace("\0", "\\0").replace("\n", "\\n") in doc


def test_an_oversized_put_reaches_the_writer_as_too_large(service):
    peer = Identity.generate()
    store = open_store(service.url, identity=peer)
    with pytest.raises(TooLarge, match="exceeds the limit of 1024"):
        store.put(f"updates/00000001/{peer.hex}.upd", b"x" * 200_000)


# -- the rules enforced by a running service -------------------------------------------------

# (case, writer, key, expected status); p and q are peers, v the validator.
WRITES = [
    ("an honest peer writes its own update", "p", "updates/00000003/{p}.upd", 200),
    ("an honest peer announces itself", "p", "peers/{p}.json", 200),
    ("an honest peer reports its status", "p", "status/00000003/{p}.json", 200),
    ("a peer writes another peer's update", "p", "updates/00000003/{q}.upd", 403),
    ("a peer writes another peer's status", "p", "status/00000003/{q}.json", 403),
    ("a peer announces as another peer", "p", "peers/{q}.json", 403),
    ("a peer spells its own id in capitals", "p", "updates/00000003/{P}.upd", 403),
    ("a peer numbers the window its own way", "p", "updates/3/{p}.upd", 403),
    ("a peer writes a gather list", "p", "gather/00000003.json", 403),
    ("a peer writes a window record", "p", "windows/00000003.json", 403),
    ("a peer writes the run manifest", "p", "run.json", 403),
    ("a peer writes a checkpoint", "p", "checkpoints/00000003/model.safetensors", 403),
    ("a peer writes a key nobody uses", "p", "misc/thing", 403),
    ("the validator writes a gather list", "v", "gather/00000004.json", 200),
    ("the validator writes the run manifest", "v", "run.json", 200),
    ("the validator writes a key nobody uses", "v", "misc/other", 200),
    ("the validator writes a peer's update", "v", "updates/00000004/{p}.upd", 403),
]


@pytest.mark.parametrize("case, writer, template, status", WRITES, ids=[c[0] for c in WRITES])
def test_write_rules(shared_service, case, writer, template, status):
    p, q = Identity.generate(), Identity.generate()
    who = {"p": p, "v": shared_service.validator}[writer]
    key = template.format(p=p.hex, q=q.hex, P=p.hex.upper())
    body = case.encode()
    got, reason = signed_put(shared_service.url, who, key, body)
    assert got == status, reason
    reader = open_store(shared_service.url)  # reads need no identity
    if status == 200:
        assert reader.get(key, 1000) == body
    else:
        assert "writable only by" in reason
        assert reader.head(key) is None


def test_a_peer_cannot_overwrite_its_own_update_the_first_arrival_counts(service):
    peer = Identity.generate()
    store = open_store(service.url, identity=peer)
    key = f"updates/00000001/{peer.hex}.upd"
    store.put(key, b"first")
    first = store.head(key)
    with pytest.raises(StoreError, match=r"409.*write-once"):
        store.put(key, b"second, after seeing the others")
    assert store.get(key, 100) == b"first" and store.head(key) == first


def test_of_simultaneous_uploads_of_one_update_exactly_one_lands(service):
    peer = Identity.generate()
    key = f"updates/00000001/{peer.hex}.upd"
    results: dict[int, int] = {}

    def upload(i: int) -> None:
        results[i] = signed_put(service.url, peer, key, f"version {i}".encode())[0]

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, status in results.items() if status == 200]
    assert len(winners) == 1 and sorted(results.values()) == [200] + [409] * 7
    assert open_store(service.url).get(key, 100) == f"version {winners[0]}".encode()


def test_peers_cannot_delete_only_the_validator_can(service):
    peer = Identity.generate()
    mine = f"updates/00000001/{peer.hex}.upd"
    open_store(service.url, identity=peer).put(mine, b"mine")
    open_store(service.url, identity=service.validator).put("gather/00000001.json", b"list")
    for key in [mine, "gather/00000001.json"]:
        with pytest.raises(StoreError, match=r"403.*only the validator deletes"):
            open_store(service.url, identity=peer).delete(key)
    validator = open_store(service.url, identity=service.validator)
    assert validator.head(mine) is not None
    validator.delete(mine)
    assert validator.head(mine) is None and not (service.root / mine).exists()


def test_a_replayed_signed_request_is_refused(service):
    peer = Identity.generate()
    key = f"peers/{peer.hex}.json"
    headers = sign_request(peer, "PUT", key, b"here", time.time())
    assert send(service.url, "PUT", f"/o/{key}", b"here", headers)[0] == 200
    status, reason = send(service.url, "PUT", f"/o/{key}", b"here", headers)
    assert (status, "replayed" in reason) == (401, True)

    # The replay that hurts: a validator's DELETE sent again after the object came back.
    validator = open_store(service.url, identity=service.validator)
    validator.put("gather/00000002.json", b"v1")
    delete = sign_request(service.validator, "DELETE", "gather/00000002.json", b"", time.time())
    assert send(service.url, "DELETE", "/o/gather/00000002.json", None, delete)[0] == 200
    validator.put("gather/00000002.json", b"v2")
    assert send(service.url, "DELETE", "/o/gather/00000002.json", None, delete)[0] == 401
    assert validator.get("gather/00000002.json", 10) == b"v2"


@pytest.mark.parametrize("offset, status", [(-3600, 401), (-61, 401), (-50, 200), (0, 200), (50, 200), (61, 401)])
def test_a_request_is_fresh_within_60_seconds_of_the_service_clock(service, offset, status):
    peer = Identity.generate()
    got, reason = signed_put(service.url, peer, f"peers/{peer.hex}.json", b"x", now=time.time() + offset)
    assert got == status, reason
    if status == 401:
        assert "stale request" in reason


def test_the_arrival_stamp_ignores_every_time_the_writer_supplies(service):
    peer = Identity.generate()
    key = f"updates/00000001/{peer.hex}.upd"
    before = time.time()
    status, _ = signed_put(service.url, peer, key, b"late", now=before - 50, extra={
        "Last-Modified": "Thu, 01 Jan 1970 00:00:00 GMT", "Date": "Thu, 01 Jan 1970 00:00:00 GMT",
        "X-Spore-Modified": "0.0", "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT",
    })
    after = time.time()
    assert status == 200
    store = open_store(service.url)
    stamp = store.head(key).modified
    assert before <= stamp <= after
    os.utime(service.root / key, (0, 0))  # a writer with access to the folder moves the file's time
    assert store.head(key).modified == stamp
    assert [o.modified for o in store.list("updates/")] == [stamp]


def _raw_put_headers(url: str, who: Identity, key: str, headers: dict[str, str]) -> int:
    """Send only the request line and headers of a PUT (no body) and return the status the service answers."""
    u = urlparse(url)
    signed = sign_request(who, "PUT", key, b"", time.time())
    lines = [f"PUT /o/{key} HTTP/1.1", f"Host: {u.hostname}"] + [f"{k}: {v}" for k, v in {**signed, **headers}.items()]
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = s.recv(4096)  # the service must answer without waiting for a body
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("case, writer, headers, status", [
    ("validator body over the limit", "v", {"Content-Length": str(MAX_BODY + 1)}, 413),
    ("peer body over the peer limit", "p", {"Content-Length": str(MAX_PEER_BODY + 1)}, 413),
    ("a gigabyte announced", "v", {"Content-Length": str(1 << 30)}, 413),
    ("no Content-Length", "v", {}, 411),
    ("chunked", "v", {"Transfer-Encoding": "chunked"}, 411),
    ("negative length", "v", {"Content-Length": "-5"}, 400),
])
def test_bodies_are_bounded_before_they_are_read(service, case, writer, headers, status):
    peer = Identity.generate()
    who, key = (service.validator, "checkpoints/00000001/model.safetensors") if writer == "v" else \
        (peer, f"updates/00000001/{peer.hex}.upd")
    assert _raw_put_headers(service.url, who, key, headers) == status
    assert open_store(service.url).head(key) is None


@pytest.mark.parametrize("forgery", ["body changed after signing", "signed by another key", "signer in capitals",
                                     "unsigned", "signature over another key"])
def test_requests_not_signed_by_the_writer_are_refused(service, forgery):
    peer, thief = Identity.generate(), Identity.generate()
    key = f"updates/00000001/{peer.hex}.upd"
    headers = sign_request(peer, "PUT", key, b"honest", time.time())
    body = b"honest"
    if forgery == "body changed after signing":
        body = b"poison"
    elif forgery == "signed by another key":
        headers = {**sign_request(thief, "PUT", key, body, time.time()), "X-Spore-Signer": peer.hex}
    elif forgery == "signer in capitals":
        headers["X-Spore-Signer"] = peer.hex.upper()
    elif forgery == "unsigned":
        headers = {}
    elif forgery == "signature over another key":
        headers = sign_request(peer, "PUT", f"peers/{peer.hex}.json", body, time.time())
    status, reason = send(service.url, "PUT", f"/o/{key}", body, headers)
    assert status == 401, reason
    assert open_store(service.url).head(key) is None


@pytest.mark.parametrize("target, status", [
    ("/o/../../etc/passwd", 400), ("/o/a//b", 400), ("/o/.store/index.sqlite", 400), ("/etc/passwd", 404),
    ("/o/run.json?x=1", 404), ("/list?prefix=../", 400), ("/list?prefix=/abs", 400),
])
def test_hostile_paths_are_refused(service, target, status):
    assert send(service.url, "GET", target)[0] == status


def test_files_planted_in_the_served_folder_are_never_served(service, tmp_path):
    peer = Identity.generate()
    root = service.root
    (root / "updates/00000001").mkdir(parents=True)
    os.mkfifo(root / f"updates/00000001/{peer.hex}.upd")
    (tmp_path / "secret").write_bytes(b"secret")
    os.symlink(tmp_path / "secret", root / "run.json")
    (root / "gather").mkdir()
    (root / "gather/00000001.json").write_bytes(b"written behind the service's back")
    store = open_store(service.url)
    for key in [f"updates/00000001/{peer.hex}.upd", "run.json", "gather/00000001.json"]:
        with pytest.raises(NotFound):
            store.get(key, 100)
        assert store.head(key) is None
    assert store.list("") == []


def test_an_object_replaced_by_a_fifo_behind_the_service_is_refused_at_once(service):
    peer = Identity.generate()
    key = f"updates/00000001/{peer.hex}.upd"
    open_store(service.url, identity=peer).put(key, b"honest")
    (service.root / key).unlink()
    os.mkfifo(service.root / key)
    store = open_store(service.url)
    store.timeout = 10  # a blocked service would show as a timeout, not as this refusal
    with pytest.raises(StoreError, match=r"500.*damaged outside the store service.*FIFO"):
        store.get(key, 100)


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie awaiting its reaper
    except (FileNotFoundError, IndexError):
        return True


def test_the_service_dies_with_the_process_that_started_it(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path;"
        "from spore.swarm.storeserver import start_store_server;"
        f"url, proc = start_store_server(Path({str(tmp_path / 'served')!r}), {'a' * 64!r});"
        "print(proc.pid, url, flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    pid, url = launcher.stdout.readline().split()
    assert open_store(url).list("") == []
    launcher.kill()
    launcher.wait()
    for _ in range(100):  # 100 polls of 0.1 s; PR_SET_PDEATHSIG delivers SIGTERM at once
        if _dead(int(pid)):
            break
        time.sleep(0.1)
    assert _dead(int(pid))
    with pytest.raises(StoreError, match="ConnectionRefusedError"):
        open_store(url).list("")


def test_the_cli_starts_the_service(tmp_path):
    validator = Identity.generate()
    ready = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "spore", "swarm", "store-server", "--root", str(tmp_path / "s"),
                             "--validator", validator.hex, "--port", "0", "--ready-file", str(ready)])
    try:
        for _ in range(600):  # up to 60 s for a cold interpreter on a loaded machine
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{int(ready.read_text())}"
        open_store(url, identity=validator).put("run.json", b"{}")
        assert open_store(url).get("run.json", 10) == b"{}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # SIGTERM is a clean shutdown


def test_the_cli_refuses_a_validator_id_in_capitals(tmp_path):
    r = subprocess.run([sys.executable, "-m", "spore", "swarm", "store-server", "--root", str(tmp_path / "s"),
                        "--validator", "A" * 64], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "upper-case" in r.stderr


def test_writers_that_never_finish_their_headers_are_cut_and_cannot_hold_every_slot(tmp_path):
    validator = Identity.generate()
    url, proc = start_store_server(tmp_path / "s", validator.hex,
                                   limits=Limits(header_seconds=3.0, max_connections=2))
    try:
        u = urlparse(url)
        idle = [socket.create_connection((u.hostname, u.port), timeout=10) for _ in range(2)]
        for s in idle:
            s.sendall(b"GET /o/run.json HTTP/1.1\r\n")  # and never the rest
        statuses = []
        for _ in range(10):  # both slots held: a third request is refused at once, not queued
            statuses.append(send(url, "GET", "/list?prefix=")[0])
            if statuses[-1] == 503:
                break
            time.sleep(0.1)
        assert statuses[-1] == 503, statuses
        for s in idle:
            assert s.recv(100) == b""  # closed by the service after header_seconds (the socket times out at 10)
            s.close()
        for _ in range(50):  # the slots come back as the cut threads end
            if send(url, "GET", "/list?prefix=")[0] == 200:
                break
            time.sleep(0.1)
        assert send(url, "GET", "/list?prefix=")[0] == 200
    finally:
        proc.kill()
        proc.wait()
