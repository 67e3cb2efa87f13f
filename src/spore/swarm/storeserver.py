"""The store service: an HTTP object store over a directory that trusts no writer.

On a plain shared directory any writer can set a file's mtime (`os.utime`),
overwrite or delete other peers' objects, and plant FIFOs (issue 9). This
service is the only writer of its directory. It

- stamps each object's arrival itself (when the whole body has been received)
  and keeps the stamp, size and SHA-256 in an SQLite index under `.store/`,
  which no key can name; GET/HEAD/LIST report that stamp as `modified`;
- accepts a PUT or DELETE only when signed (ed25519) by a participant allowed
  to write that key, with a fresh timestamp and a nonce never seen before;
- serves only objects it indexed, from regular files.

The rules are the pure functions at the top (`request_message`, `key_owner`,
`check_write`, `check_time`, `parse_auth`); the I/O comes after. The wire
format is specified in docs/protocol.md section 2.

    PUT    /o/{key}          signed; the body is the object    200 {"key", "size", "modified", "sha256"}
    DELETE /o/{key}          signed; the validator only        200 {"key"}
    GET    /o/{key}          the object; headers X-Spore-Modified, X-Spore-Sha256
    HEAD   /o/{key}          the same headers, no body
    GET    /list?prefix=P    {"objects": [{"key", "size", "modified"}, ...]} sorted by key
    errors                   the status and {"error": reason}

Start one with `spore swarm store-server --root DIR --validator ID`, or from
a launcher with `start_store_server(root, validator_hex)`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs, urlsplit

from spore.swarm.store import LocalStore, StoreError, check_key, check_prefix, open_regular

if TYPE_CHECKING:
    from spore.swarm.identity import Identity

log = logging.getLogger(__name__)

DOMAIN = b"spore/store-request/v1\0"
SIGNER, TIME, NONCE, SIGNATURE = "X-Spore-Signer", "X-Spore-Time", "X-Spore-Nonce", "X-Spore-Signature"
META_DIR = ".store"  # keys never start with '.', so no request can name it


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 30  # checkpoints of real models
    max_peer_body_bytes: int = 64 << 20  # what a peer may put under its own keys
    skew_seconds: float = 60.0  # |X-Spore-Time - service clock| allowed
    read_timeout: float = 30.0  # per socket read or write
    header_seconds: float = 30.0  # the request line and headers must arrive within this
    request_seconds: float = 600.0  # a whole body must arrive within this
    max_connections: int = 64  # more at once are answered 503


class Refusal(Exception):
    """A request refused, with the HTTP status and a reason for the writer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


# -- the rules (pure) ----------------------------------------------------------

_PEER_KEYS = [
    re.compile(r"peers/(?P<id>[0-9a-f]{64})\.json"),
    re.compile(r"updates/[0-9]{8}/(?P<id>[0-9a-f]{64})\.upd"),
    re.compile(r"status/[0-9]{8}/(?P<id>[0-9a-f]{64})\.json"),
]


def request_message(method: str, key: str, body_sha256: str, unix_time: int, nonce: str) -> bytes:
    """What a writer signs: the domain, then method, key, SHA-256 of the body (hex), time and nonce, one per line."""
    return DOMAIN + "\n".join([method, key, body_sha256, str(unix_time), nonce]).encode("ascii")


def sign_request(identity: Identity, method: str, key: str, body: bytes, now: float) -> dict[str, str]:
    """The four headers that authorize one PUT or DELETE of `key` by `identity`."""
    t, nonce = int(now), secrets.token_hex(16)
    sig = identity.sign(request_message(method, key, hashlib.sha256(body).hexdigest(), t, nonce))
    return {SIGNER: identity.hex, TIME: str(t), NONCE: nonce, SIGNATURE: sig.hex()}


def key_owner(key: str, validator: str) -> str:
    """The one id allowed to write `key`: the peer a peer key names, else the validator.

    Only the canonical (lower-case) spelling names a peer: `updates/1/{ID}.upd`
    in capitals is an ordinary key, and so the validator's.
    """
    for pattern in _PEER_KEYS:
        m = pattern.fullmatch(key)
        if m:
            return m["id"]
    return validator


def check_write(method: str, key: str, signer: str, validator: str, exists: bool) -> None:
    """Refusal unless `signer` may `method` (PUT or DELETE) `key` now."""
    if method == "DELETE":
        if signer != validator:
            raise Refusal(403, "only the validator deletes objects")
        return
    owner = key_owner(key, validator)
    if signer != owner:
        whose = "the validator" if owner == validator else f"peer {owner}"
        raise Refusal(403, f"{key} is writable only by {whose}, not by {signer}")
    if exists and key.startswith("updates/"):
        raise Refusal(409, f"{key} exists: updates are write-once, the first arrival counts")


def check_length(headers: dict[str, str], signer_is_validator: bool, limits: Limits) -> int:
    """The body length a PUT declares, refused before any of it is read."""
    if "transfer-encoding" in headers:
        raise Refusal(411, "Transfer-Encoding is not accepted: send Content-Length")
    text = headers.get("content-length")
    if text is None:
        raise Refusal(411, "Content-Length is required")
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise Refusal(400, f"Content-Length {text[:20]!r} is not a byte count")
    limit = limits.max_body_bytes if signer_is_validator else min(limits.max_body_bytes, limits.max_peer_body_bytes)
    if int(text) > limit:
        raise Refusal(413, f"body of {int(text)} bytes exceeds the limit of {limit}")
    return int(text)


def check_time(claimed: str, now: float, skew: float) -> int:
    """The request's time, refused when further than `skew` seconds from `now`."""
    if not (claimed.isascii() and claimed.isdigit()) or len(claimed) > 12:
        raise Refusal(401, f"{TIME} must be whole unix seconds, got {claimed[:20]!r}")
    t = int(claimed)
    if abs(now - t) > skew:
        raise Refusal(401, f"stale request: {TIME} {t} is {t - now:+.0f} s from the service's clock "
                           f"(allowed: {skew:g} s)")
    return t


class Auth(NamedTuple):
    signer: str
    unix_time: str
    nonce: str
    signature: str


def parse_auth(headers: dict[str, str]) -> Auth:
    """The signature headers, each in its one valid spelling."""
    from spore.swarm.identity import parse_id

    missing = [h for h in (SIGNER, TIME, NONCE, SIGNATURE) if h.lower() not in headers]
    if missing:
        raise Refusal(401, f"unsigned request: missing {', '.join(missing)}")
    auth = Auth(*(headers[h.lower()] for h in (SIGNER, TIME, NONCE, SIGNATURE)))
    try:
        parse_id(auth.signer)
    except ValueError as e:
        raise Refusal(401, f"{SIGNER}: {e}") from None
    if not re.fullmatch(r"[0-9a-f]{32}", auth.nonce):
        raise Refusal(401, f"{NONCE} must be 32 lower-case hex digits")
    if not re.fullmatch(r"[0-9a-f]{128}", auth.signature):
        raise Refusal(401, f"{SIGNATURE} must be 128 lower-case hex digits")
    return auth


def check_signature(auth: Auth, method: str, key: str, body_sha256: str) -> None:
    from spore.swarm.identity import verify

    message = request_message(method, key, body_sha256, int(auth.unix_time), auth.nonce)
    if not verify(bytes.fromhex(auth.signer), bytes.fromhex(auth.signature), message):
        raise Refusal(401, f"bad signature: not {auth.signer}'s signature of this {method} of {key} and its body")


# -- the service's state (I/O) -------------------------------------------------


class Row(NamedTuple):
    key: str
    size: int
    modified: float
    sha256: str


class Service:
    """The directory, its index of arrivals and the nonces seen; every change under one lock."""

    def __init__(self, root: Path, validator: str, limits: Limits) -> None:
        from spore.swarm.identity import parse_id

        parse_id(validator)
        self.validator, self.limits = validator, limits
        self.files = LocalStore(root)
        self.incoming = self.files.root / META_DIR / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        for stale in self.incoming.iterdir():  # bodies cut off by a crash
            stale.unlink(missing_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.files.root / META_DIR / "index.sqlite", check_same_thread=False,
                                  isolation_level=None)
        self.db.executescript("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = FULL;
            CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, size INTEGER, modified REAL, sha256 TEXT);
            CREATE TABLE IF NOT EXISTS nonces (signer TEXT, nonce TEXT, expires REAL, PRIMARY KEY (signer, nonce));
            CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires);
        """)

    def row(self, key: str) -> Row | None:
        with self.lock:
            r = self.db.execute("SELECT key, size, modified, sha256 FROM objects WHERE key = ?", (key,)).fetchone()
        return Row(*r) if r else None

    def open(self, key: str) -> tuple[Row, int]:
        """The indexed object and a descriptor of its file, consistent with each other."""
        with self.lock:
            r = self.db.execute("SELECT key, size, modified, sha256 FROM objects WHERE key = ?", (key,)).fetchone()
            if r is None:
                raise Refusal(404, f"no object {key}")
            row = Row(*r)
            try:
                fd = open_regular(self.files.path(key), key)
            except StoreError as e:
                raise Refusal(500, f"object damaged outside the store service: {e}") from None
        if os.fstat(fd).st_size != row.size:
            os.close(fd)
            raise Refusal(500, f"object damaged outside the store service: {key} changed size")
        return row, fd

    def list(self, prefix: str) -> list[Row]:
        with self.lock:
            rows = self.db.execute("SELECT key, size, modified, sha256 FROM objects "
                                   "WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key", (prefix,)).fetchall()
        return [Row(*r) for r in rows]

    def remember(self, auth: Auth) -> None:
        """Refusal if this signer used this nonce before (while its time can still pass check_time)."""
        now = time.time()
        with self.lock:
            self.db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            try:
                self.db.execute("INSERT INTO nonces VALUES (?, ?, ?)",
                                (auth.signer, auth.nonce, int(auth.unix_time) + self.limits.skew_seconds + 1))
            except sqlite3.IntegrityError:
                raise Refusal(401, "replayed request: this signer used this nonce already") from None

    def commit_put(self, key: str, tmp: Path, size: int, sha256: str, arrival: float) -> None:
        with self.lock:
            exists = self.db.execute("SELECT 1 FROM objects WHERE key = ?", (key,)).fetchone() is not None
            if exists and key.startswith("updates/"):  # a concurrent PUT of the same update arrived first
                raise Refusal(409, f"{key} exists: updates are write-once, the first arrival counts")
            try:
                dest = self.files.path(key)
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (key, size, arrival, sha256))
                os.replace(tmp, dest)
                self.db.execute("COMMIT")
            except (OSError, StoreError) as e:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise Refusal(409, f"{key} cannot be stored: {e}") from None

    def delete(self, key: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM objects WHERE key = ?", (key,))
            try:
                self.files.delete(key)
            except StoreError as e:
                raise Refusal(409, str(e)) from None


# -- HTTP ----------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "spore-store/1"
    body_left = 0  # bytes of a PUT body not yet read

    def setup(self) -> None:
        limits = self.server.service.limits
        self.timeout = limits.read_timeout
        super().setup()
        # A writer that dribbles its headers one byte per read_timeout would hold a slot for ever.
        self.header_deadline = threading.Timer(limits.header_seconds, self._cut)
        self.header_deadline.daemon = True
        self.header_deadline.start()

    def parse_request(self) -> bool:  # reads the headers
        parsed = super().parse_request()
        self.header_deadline.cancel()
        return parsed

    def finish(self) -> None:
        self.header_deadline.cancel()
        super().finish()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # one method per verb; each either replies or raises Refusal
    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_PUT(self) -> None:
        self._guard(self._put)

    def do_DELETE(self) -> None:
        self._guard(self._delete)

    def _guard(self, handle: Callable[[], None]) -> None:
        try:
            handle()
        except Refusal as r:
            if r.status != 413:
                self._drain()  # so that the writer, still sending, reads the reason and not a reset
            log.log(logging.DEBUG if r.status == 404 else logging.INFO,
                    "refused %s %s: %s", self.command, self.path[:200], r.reason)
            self._reply(r.status, {"error": r.reason})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:
            log.exception("store service: %s %s", self.command, self.path[:200])
            self._reply(500, {"error": f"internal error: {type(e).__name__}"})

    def _drain(self) -> None:
        """Read and drop what is left of a refused body (at most its checked Content-Length)."""
        left = self.body_left
        deadline = time.monotonic() + self.server.service.limits.request_seconds
        with contextlib.suppress(OSError):
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
        self.body_left = 0

    def _reply(self, status: int, doc: dict[str, object]) -> None:
        body = json.dumps(doc, sort_keys=True).encode() + b"\n"
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _key(self) -> str:
        url = urlsplit(self.path)
        if not url.path.startswith("/o/") or url.query:
            raise Refusal(404, "objects live at /o/{key}")
        try:
            return check_key(url.path[len("/o/") :])
        except ValueError as e:
            raise Refusal(400, str(e)) from None

    def _get(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/list" and self.command == "GET":
            return self._list(url.query)
        service = self.server.service
        row, fd = service.open(self._key())
        with os.fdopen(fd, "rb") as f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(row.size))
            self.send_header("X-Spore-Modified", repr(row.modified))
            self.send_header("X-Spore-Sha256", row.sha256)
            self.end_headers()
            left = row.size if self.command == "GET" else 0
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break  # cut short; the client's length and SHA-256 checks see it
                self.wfile.write(chunk)
                left -= len(chunk)

    def _list(self, query: str) -> None:
        values = parse_qs(query, keep_blank_values=True).get("prefix", [""])
        try:
            prefix = check_prefix(values[-1])
        except ValueError as e:
            raise Refusal(400, str(e)) from None
        objects = [{"key": r.key, "size": r.size, "modified": r.modified}
                   for r in self.server.service.list(prefix)]
        self._reply(200, {"objects": objects})

    def _authorize(self, method: str, key: str, exists: bool) -> Auth:
        """Everything about the writer that can be checked before reading a body."""
        service = self.server.service
        auth = parse_auth(self._headers())
        check_time(auth.unix_time, time.time(), service.limits.skew_seconds)
        check_write(method, key, auth.signer, service.validator, exists)
        return auth

    def _put(self) -> None:
        service = self.server.service
        key = self._key()
        headers = self._headers()
        # Bounded first; from here on a refusal drains the body (at most `length` bytes).
        length = check_length(headers, headers.get(SIGNER.lower()) == service.validator, service.limits)
        self.body_left = length
        auth = self._authorize("PUT", key, exists=service.row(key) is not None)
        tmp, sha256 = self._receive(length)
        try:
            arrival = time.time()  # the whole body is here: this is the object's time
            check_signature(auth, "PUT", key, sha256)
            service.remember(auth)
            service.commit_put(key, tmp, length, sha256, arrival)
        finally:
            tmp.unlink(missing_ok=True)
        self._reply(200, {"key": key, "size": length, "modified": arrival, "sha256": sha256})

    def _receive(self, length: int) -> tuple[Path, str]:
        """The body, streamed to a file under .store/incoming, and its SHA-256; bounded in time."""
        service = self.server.service
        fd, name = tempfile.mkstemp(dir=service.incoming, prefix="put-")
        tmp, digest = Path(name), hashlib.sha256()
        deadline = time.monotonic() + service.limits.request_seconds
        try:
            with os.fdopen(fd, "wb") as f:
                left = length
                while left > 0:
                    if time.monotonic() > deadline:
                        raise Refusal(408, f"body not received within {service.limits.request_seconds:g} s")
                    try:
                        chunk = self.rfile.read1(min(left, 1 << 20))
                    except TimeoutError:
                        raise Refusal(408, f"no body bytes for {service.limits.read_timeout:g} s") from None
                    if not chunk:
                        raise Refusal(400, f"body ended {left} bytes short of its Content-Length")
                    digest.update(chunk)
                    f.write(chunk)
                    left -= len(chunk)
                    self.body_left = left
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest()

    def _delete(self) -> None:
        service = self.server.service
        key = self._key()
        headers = self._headers()
        if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
            raise Refusal(400, "DELETE carries no body")
        auth = self._authorize("DELETE", key, exists=True)
        check_signature(auth, "DELETE", key, hashlib.sha256(b"").hexdigest())
        service.remember(auth)
        service.delete(key)
        self._reply(200, {"key": key})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        self.slots = threading.BoundedSemaphore(service.limits.max_connections)
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if not self.slots.acquire(blocking=False):  # bounded threads: refuse, don't queue
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(root: Path, validator_hex: str, host: str = "127.0.0.1", port: int = 0,
                limits: Limits | None = None) -> Server:
    return Server((host, port), Service(Path(root), validator_hex, limits or Limits()))


def serve(root: Path, validator_hex: str, host: str = "127.0.0.1", port: int = 0,
          limits: Limits | None = None, ready_file: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT; `ready_file` gets the bound port once requests are accepted."""
    server = make_server(root, validator_hex, host, port, limits)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    bound = server.server_address[1]
    if ready_file is not None:
        tmp = Path(f"{ready_file}.tmp")
        tmp.write_text(f"{bound}\n")
        os.replace(tmp, ready_file)  # whole or absent: the launcher never reads half a port
    log.info("store service for %s on http://%s:%d (validator %s)", root, host, bound, validator_hex)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


# -- starting it ---------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        raise SystemExit(f"store service: parent {parent_pid} is gone")


def start_store_server(root: Path, validator_hex: str, host: str = "127.0.0.1", port: int = 0,
                       limits: Limits | None = None, timeout: float = 60.0) -> tuple[str, subprocess.Popen[bytes]]:
    """Run the service as a child process; (its URL, the process) once it accepts requests.

    The child dies with the thread that started it (PR_SET_PDEATHSIG): call this
    from the launcher's main thread.
    """
    from spore.swarm.identity import parse_id

    parse_id(validator_hex)
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="spore-store-") as tmp:
        ready = Path(tmp) / "port"
        cmd = [sys.executable, "-m", "spore.swarm.storeserver", "--root", str(root), "--validator", validator_hex,
               "--host", host, "--port", str(port), *_limit_flags(limits),
               "--ready-file", str(ready), "--parent-pid", str(os.getpid())]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise StoreError(f"store service exited with code {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise StoreError(f"store service not ready within {timeout:g} s")
            time.sleep(0.05)
        bound = int(ready.read_text())
    return f"http://{host}:{bound}", proc


def _limit_flags(limits: Limits) -> list[str]:
    return [arg for f in dataclasses.fields(Limits)
            for arg in (f"--{f.name.replace('_', '-')}", str(getattr(limits, f.name)))]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, required=True, help="the directory to serve (created if missing)")
    p.add_argument("--validator", required=True, help="the run validator's id (64 lower-case hex digits)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    from spore.cliargs import port, positive_float, positive_int

    p.add_argument("--port", type=port, default=0, help="port (default 0: any free port)")
    for f in dataclasses.fields(Limits):  # one flag per limit, e.g. --max-body-bytes
        kind = positive_int if isinstance(f.default, int) else positive_float
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default,
                       metavar=type(f.default).__name__.upper(), help=f"default {f.default}")
    p.add_argument("--ready-file", type=Path, default=None, help="write the bound port here once serving")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process (the parent) dies")


def run_from_args(args: argparse.Namespace) -> int:
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    serve(args.root, args.validator, args.host, args.port, limits, args.ready_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spore.swarm.storeserver", description=__doc__.split("\n")[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
