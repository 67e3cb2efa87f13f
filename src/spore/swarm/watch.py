"""`spore swarm watch` and `spore swarm report --html`: a run as an outsider sees it.

The reader here takes only what anyone may read: the objects in the store,
each verified against its signer (docs/protocol.md sections 2-3, 7), and for a
run folder the ledger, verified with `verify_ledger`. It keeps what it has
read (by key, size and time), so a poll costs one listing of each prefix
plus the objects that are new. `spore.swarm.view` turns that into the page's
document; `watch_page` draws it.

    spore swarm watch RUN_DIR|STORE [--port P]   a live page on http://127.0.0.1:P/
    spore swarm report RUN_DIR --html FILE        the same page as one file

A RUN_DIR is what `spore swarm run --out` writes (RUN/store, RUN/ledger.sqlite);
it need not exist yet: the page waits for the run to start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spore.swarm.identity import parse_id
from spore.swarm.protocol import MAX_JSON_BYTES, RUN_KEY, checkpoint_keys, open_json
from spore.swarm.store import ObjectInfo, Store, StoreError, open_store
from spore.swarm.view import LedgerState, StoreSnapshot, run_view
from spore.swarm.watch_page import page

DEFAULT_PORT = 8765
LEDGER_FILE = "ledger.sqlite"  # as spore.swarm.validator writes it, without importing torch to say so
_WINDOW_KEY = re.compile(r"^(windows|gather)/(\d{8})\.json$")
_STATUS_KEY = re.compile(r"^status/(\d{8})/([0-9a-f]{64})\.json$")
_UPDATE_KEY = re.compile(r"^updates/(\d{8})/([0-9a-f]{64})\.upd$")
_PEER_KEY = re.compile(r"^peers/([0-9a-f]{64})\.json$")


def safetensors_data_bytes(data: bytes) -> int:
    """Total tensor bytes of a safetensors file (a u64 LE header length, then a JSON header
    giving each tensor's `data_offsets`)."""
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + n])
    return sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__")


class RunReader:
    """Reads a run from its store (and ledger) again and again, as cheaply as it can."""

    def __init__(self, target: str, store_url: str | None = None, validator: str | None = None) -> None:
        self.pinned = parse_id(validator) if validator else None
        self.folder: Path | None = None
        if "://" in target:
            self.store_url = target
        elif (Path(target) / RUN_KEY).is_file() and not (Path(target) / "store").is_dir():
            self.store_url = target  # a store folder itself
        else:
            self.folder = Path(target)  # a run folder, perhaps not made yet
            self.store_url = store_url or str(self.folder / "store")
        if store_url is not None:
            self.store_url = store_url
        self.store: Store | None = None
        self.seen: dict[str, tuple[int, float, dict[str, Any] | None]] = {}
        self.problems: dict[str, str] = {}
        self.dense: dict[str, int] = {}  # run id -> dense fp32 bytes

    def _open(self) -> Store | None:
        if self.store is None:
            try:
                self.store = open_store(self.store_url, create=False)
            except StoreError:
                return None  # a run folder whose store is not there yet
        return self.store

    def _signed(self, store: Store, info: ObjectInfo, signer: bytes | None) -> dict[str, Any] | None:
        """The verified body at `info.key`, read again only when its size or time changed."""
        cached = self.seen.get(info.key)
        if cached is not None and cached[:2] == (info.size, info.modified):
            return cached[2]
        body = None
        try:
            body, _ = open_json(store.get(info.key, MAX_JSON_BYTES), signer=signer)
            self.problems.pop(info.key, None)
        except StoreError as e:
            self.problems[info.key] = f"{info.key}: {e}"
        except Exception as e:  # torn, forged or malformed: shown, never trusted
            self.problems[info.key] = f"{info.key}: {e}"
        self.seen[info.key] = (info.size, info.modified, body)
        return body

    def snapshot(self) -> StoreSnapshot:
        snap = StoreSnapshot()
        store = self._open()
        if store is None:
            return snap
        run_info = store.head(RUN_KEY)
        if run_info is None:
            return snap
        try:
            manifest, who = open_json(store.get(RUN_KEY, MAX_JSON_BYTES), signer=self.pinned)
        except Exception as e:
            snap.problems.append(f"{RUN_KEY}: {e}")
            return snap
        validator = who
        snap.manifest, snap.validator = manifest, validator.hex()
        snap.validator_source = "pinned with --validator" if self.pinned else "run.json's signer, not pinned"
        ck = store.head(checkpoint_keys(0)[1])
        if ck is not None:
            body = self._signed(store, ck, validator)
            snap.theta0 = body.get("theta") if body else None
        for info in store.list("windows/") + store.list("gather/"):
            m = _WINDOW_KEY.match(info.key)
            if m is None:
                continue
            body = self._signed(store, info, validator)
            if body is not None and body.get("window") == int(m[2]):  # a record replayed elsewhere is no record
                (snap.records if m[1] == "windows" else snap.gathers)[int(m[2])] = body
        for info in store.list("status/"):
            m = _STATUS_KEY.match(info.key)
            if m is None:
                continue
            body = self._signed(store, info, bytes.fromhex(m[2]))
            if body is not None and body.get("peer") == m[2] and body.get("window") == int(m[1]):
                snap.statuses.setdefault(int(m[1]), {})[m[2]] = body
        for info in store.list("updates/"):
            m = _UPDATE_KEY.match(info.key)
            if m is not None:
                snap.uploads.setdefault(int(m[1]), {})[m[2]] = info.size
        for info in store.list("peers/"):
            m = _PEER_KEY.match(info.key)
            if m is not None and self._signed(store, info, bytes.fromhex(m[1])) is not None:
                snap.announced.append(m[1])
        snap.dense_bytes = self._dense_bytes(store, validator, str(manifest.get("run_id", "")))
        snap.problems += sorted(self.problems.values())
        return snap

    def _dense_bytes(self, store: Store, validator: bytes, run_id: str) -> int | None:
        """Bytes of one dense fp32 copy of the trainable tensors (summary.json's `dense_fp32_bytes`):
        the tensor data of checkpoint 0, whose SHA-256 the validator signed. Read once per run."""
        if run_id not in self.dense:
            weights, manifest = checkpoint_keys(0)
            info = store.head(manifest)
            signed = self._signed(store, info, validator) if info is not None else None
            if signed is None:
                return None
            data = store.get(weights, int(signed["size"]))
            if hashlib.sha256(data).hexdigest() != signed["sha256"]:
                self.problems[weights] = f"{weights}: does not match the SHA-256 in its signed manifest"
                return None
            try:
                self.dense[run_id] = safetensors_data_bytes(data)
            except (struct.error, ValueError, KeyError, TypeError, IndexError) as e:
                self.problems[weights] = f"{weights}: not a safetensors file ({e})"
                return None
        return self.dense[run_id]

    def ledger(self) -> LedgerState | None:
        if self.folder is None or not (self.folder / LEDGER_FILE).is_file():
            return None
        import sqlite3

        from spore.swarm.ledger import SQLiteLedger, verify_ledger

        path = self.folder / LEDGER_FILE
        check = verify_ledger(path, self.pinned)
        windows: dict[int, dict[str, Any]] = {}
        validator = None
        try:
            led = SQLiteLedger.open_readonly(path)
            try:
                for r in led.records():
                    if not check.ok and (check.first_bad is None or r.seq >= check.first_bad):
                        break  # only what verified
                    if r.kind == "genesis":
                        validator = r.body.get("manifest", {}).get("validator")
                    elif r.kind == "window" and r.window is not None:
                        windows[r.window] = r.body
            finally:
                led.close()
        except (sqlite3.DatabaseError, ValueError, AttributeError):
            pass  # verify_ledger has said what is wrong with it
        return LedgerState(str(path), check.ok, check.records, check.first_bad, check.problem, validator, windows)

    def view(self) -> dict[str, Any]:
        source = {"store": self.store_url, "ledger": str(self.folder / LEDGER_FILE) if self.folder else None}
        try:
            snap = self.snapshot()
        except (StoreError, OSError) as e:
            snap = StoreSnapshot(problems=[f"cannot read the store: {e}"])
        view = run_view(snap, self.ledger(), time.time(), source)
        if snap.manifest is not None and self.folder is not None and view["ledger"] is not None \
                and view["ledger"]["validator"] == snap.validator and not self.pinned:
            view["run"]["validator_source"] = "run.json's signer, the one the run's ledger names"
        return view


def serve(reader: RunReader, port: int, host: str = "127.0.0.1", echo=sys.stdout) -> None:
    """Serve the live page until interrupted. Everything served is public: the store's objects
    and the ledger's verification; nothing is written anywhere."""
    lock = threading.Lock()
    live_page = page().encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", live_page)
            elif path == "/view.json":
                with lock:
                    body = json.dumps(reader.view(), allow_nan=False).encode()
                self._send(200, "application/json", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port "
                         "(0 picks a free one)") from None
    server.daemon_threads = True
    print(f"spore swarm watch: http://{host}:{server.server_address[1]}/  (store {reader.store_url}; "
          "Ctrl-C stops)", file=echo, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


def write_report(reader: RunReader, out: Path) -> dict[str, Any]:
    """The page with the run's document in it: one file, opened from disk, no network."""
    view = reader.view()
    if view.get("run") is None:
        raise ValueError(f"no run in {reader.store_url} (no verified run.json); "
                         "give a run folder written by `spore swarm run --out` or its store")
    out.write_text(page(view))
    return view


def _port(text: str) -> int:
    import argparse

    from spore.cliargs import int_at_least

    port = int_at_least(text, 0, "a port number")
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {port}")
    return port


def add_arguments(swarm) -> None:
    """`spore swarm watch` and `spore swarm report`, registered by spore.cli."""
    where = ("a run folder (`spore swarm run --out`; it may not exist yet), a store folder, "
             "or a store URL (http://HOST:PORT, s3://bucket/prefix?endpoint=...)")
    w = swarm.add_parser("watch", help="a live web page of a run, read from its store and ledger")
    w.add_argument("target", metavar="RUN_OR_STORE", help=where)
    w.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"serve on http://127.0.0.1:PORT/ (default {DEFAULT_PORT}; 0: any free port)")
    r = swarm.add_parser("report", help="the run's page as one self-contained HTML file")
    r.add_argument("target", metavar="RUN_OR_STORE", help=where)
    r.add_argument("--html", type=Path, required=True, metavar="FILE", help="write the page here")
    for p in (w, r):
        p.add_argument("--store", default=None, help="the run's store URL, when it is not RUN/store")
        p.add_argument("--validator", default=None, metavar="ID",
                       help="pin the validator id (64 hex digits) that must have signed the run")


def run_from_args(args) -> int:
    reader = RunReader(str(args.target), args.store, args.validator)
    if args.swarm_command == "report":
        view = write_report(reader, args.html)
        print(f"{args.html}: run {view['run']['run_id']}, {view['totals']['windows_recorded']} of "
              f"{view['run']['windows']} windows recorded ({view['state']})")
        return 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
        serve(reader, args.port)
    return 0
