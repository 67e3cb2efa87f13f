"""The egress proxy: the sandbox's only way out, to the hosts a run allows (issue #10, item 6).

    agent --HTTP(S)_PROXY--> 127.0.0.1:3128   the forwarder, in the sandbox's own network
                                              namespace (it has no other network)
          --> RUN/egress/proxy.sock           a Unix socket, bound read-only into the sandbox
          --> the proxy                       a process of the harness, outside the sandbox
          --> HOST:PORT                       resolved and connected on the host, if allowed

`spore posttrain run --allow-host HOST[:PORT]` (repeatable) names the hosts. The proxy
speaks HTTP/1.1 proxy requests (RFC 9110 §9.3.6, RFC 9112 §3.2.2): `CONNECT host:port`
for a tunnel (HTTPS), or an absolute `http://` URL for plain HTTP. It resolves and
connects only for an allowed (host, port) pair and refuses everything else; it writes
one JSON line per connection to RUN/trace/network.jsonl, which the agent cannot see:

    id, start, end            connection number, times (Unix seconds)
    request                   the request line as sent (cut at 300 characters)
    method, host, port        what the agent asked for; url for plain HTTP
    tls, sni                  after CONNECT: the ClientHello's server name (RFC 6066 §3),
                              tls: sni | no sni | not tls
    peer                      the address connected to
    bytes_up, bytes_down      agent -> host, host -> agent (the host's bytes only)
    decision, reason          allowed | refused (a host, port or server name not allowed:
                              the judge flags it) | error (a bad request, a limit, an
                              unreachable host: listed, flags nothing), and why

Format notes:
  - A host is a DNS name (RFC 1123 labels) or an IP literal; the two never match each
    other: allowing `api.example.com` allows that name, not its addresses. A name whose
    last label is all digits is refused: resolvers read `127.1` as 127.0.0.1.
  - `--allow-host HOST` without a port allows 80 and 443.
  - After CONNECT the first bytes the agent sends are held until they are a whole TLS
    ClientHello (RFC 8446 §4.1.2, across records if fragmented); a server name other than
    an allowed host on that port is refused, so is a ClientHello that cannot be read. Bytes
    that are not TLS pass unread. Inside TLS the proxy sees nothing: a Host header or
    path on an allowed server is the agent's business.
  - Plain HTTP is sent on with the Host header taken from the URL and `Connection: close`;
    later requests on the same connection reach the same host and show as bytes only.

Bounds: 64 connections at a time (then 503), a 16 KiB request header read within 10 s,
10 s to connect, 300 s without a byte either way, 10,000 log lines (then a count).
The proxy dies with the harness (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, NamedTuple
from urllib.parse import urlsplit

PORT = 3128  # the forwarder's port in the sandbox's own network namespace
PROXY_URL = f"http://127.0.0.1:{PORT}"  # what the agent's HTTP_PROXY names
DEFAULT_PORTS = (80, 443)
SOCKET = "proxy.sock"  # in RUN/egress/
MAX_CONNECTIONS = 64
MAX_HEAD = 16 << 10
MAX_HELLO = 64 << 10
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
MAX_LOG_LINES = 10_000
CHUNK = 64 << 10
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# ---------------------------------------------------------------------------
# Hosts


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalize_host(text: str) -> str:
    """A DNS name (lowercase, no trailing dot) or an IP literal in its short form."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    name = text.lower().removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{text!r} is not a host name or IP address")
    if labels[-1].isdigit():
        raise ValueError(f"{text!r} is neither a host name nor an IP address in dotted form")
    return name


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address (no port)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: an IPv6 address in brackets, then :port or nothing")
        port = rest[1:] if rest else None
    elif text.count(":") > 1:
        host, port = text, None
    else:
        host, _, port = text.partition(":")
        port = port if ":" in text else None
    if port is None:
        return normalize_host(host), None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return normalize_host(host), int(port)


class AllowedHost(NamedTuple):
    host: str
    port: int | None  # None: DEFAULT_PORTS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def ports(self) -> tuple[int, ...]:
        return DEFAULT_PORTS if self.port is None else (self.port,)


def parse_allow_host(text: str) -> AllowedHost:
    """`--allow-host`'s value, or a ValueError that says what to write instead."""
    text = text.strip()
    if not text:
        raise ValueError("empty; give a host name or IP, optionally with :PORT "
                         "(e.g. api.example.com or 10.0.0.5:8080)")
    if "://" in text or "/" in text:
        raise ValueError(f"{text!r} is a URL; give the host alone, e.g. "
                         f"{urlsplit(text).hostname or 'api.example.com'}, or HOST:PORT")
    if "*" in text:
        raise ValueError(f"{text!r}: wildcards are not allowed; name each host")
    if any(c.isspace() or c in "@?#%" for c in text):
        raise ValueError(f"{text!r} is not HOST or HOST:PORT")
    return AllowedHost(*split_host_port(text))


def refusal(allowed: Iterable[AllowedHost], host: str, port: int) -> str | None:
    """Why (host, port) is refused, or None when an allowed entry covers it."""
    ports = sorted({p for a in allowed if a.host == host for p in a.ports()})
    if not ports:
        return f"{host} is not an allowed host"
    if port not in ports:
        return f"port {port} of {host} is not allowed (allowed: {', '.join(map(str, ports))})"
    return None


# ---------------------------------------------------------------------------
# Proxy requests (RFC 9112 §3: request line, then header fields, then an empty line)


class BadRequest(ValueError):
    """A request the proxy will not serve, with the status it answers."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


class Request(NamedTuple):
    method: str
    host: str
    port: int
    url: str | None  # plain HTTP only
    path: str  # plain HTTP: the origin-form target sent on
    version: str
    headers: list[tuple[str, str]]


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
               "proxy-authenticate", "te", "trailer", "upgrade", "host"}


def request_line(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].decode("latin-1")[:300]


def parse_request(head: bytes) -> Request:
    """A proxy request's head (through the empty line), or BadRequest."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest("not an HTTP/1.x request line")
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        if not line:
            break
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):  # also a folded line (RFC 9112 §5.2)
            raise BadRequest(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    if method == "CONNECT":
        try:
            host, port = split_host_port(target)
        except ValueError as e:
            raise BadRequest(f"CONNECT {target[:100]}: {e}") from None
        if port is None:
            raise BadRequest("CONNECT needs host:port")
        return Request(method, host, port, None, "", version, headers)
    scheme = target.split(":", 1)[0].lower()
    if scheme == "https":
        raise BadRequest("an https:// URL goes through CONNECT, not as a plain request")
    if scheme != "http" or not target[5:7] == "//":
        raise BadRequest("not a proxy request: the target must be an absolute http:// URL "
                         "or CONNECT host:port")
    url = urlsplit(target)
    if "@" in url.netloc or not url.netloc:
        raise BadRequest("the URL must name a host and no user")
    try:
        host, port = split_host_port(url.netloc)
    except ValueError as e:
        raise BadRequest(f"{target[:100]}: {e}") from None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return Request(method, host, port or 80, target, path, version, headers)


def origin_request(req: Request) -> bytes:
    """The plain HTTP request as the host gets it: origin-form target, Host from the URL,
    the proxy's own and hop-by-hop fields dropped, one request per connection."""
    host = f"[{req.host}]" if ":" in req.host else req.host
    authority = host if req.port == 80 else f"{host}:{req.port}"
    lines = [f"{req.method} {req.path} {req.version}", f"Host: {authority}"]
    lines += [f"{n}: {v}" for n, v in req.headers if n.lower() not in _HOP_BY_HOP]
    return ("\r\n".join([*lines, "Connection: close", "", ""])).encode("latin-1")


# ---------------------------------------------------------------------------
# TLS ClientHello: the server name (RFC 8446 §4.1.2, §5.1; RFC 6066 §3)
#
#   record     type(1) = 22 handshake, legacy_version(2) = 3.x, length(2) <= 2^14, fragment
#   handshake  type(1) = 1 client_hello, length(3), body; may span several records
#   body       legacy_version(2), random(32), session_id<0..32>, cipher_suites<2..2^16-2>,
#              compression_methods<1..2^8-1>, extensions<8..2^16-1> (absent before TLS 1.0)
#   extension  type(2), length(2), data; server_name is type 0:
#              server_name_list<1..2^16-1> of name_type(1) = 0 host_name, HostName<1..2^16-1>

SNI, NO_SNI, NOT_TLS, INCOMPLETE, MALFORMED = "sni", "no sni", "not tls", "incomplete", "malformed"


class Hello(NamedTuple):
    status: str  # sni | no sni | not tls | incomplete (more bytes needed) | malformed
    sni: str | None = None


class _Short(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Short
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.int(length_bytes)))

    def done(self) -> bool:
        return self.pos == len(self.data)


def client_hello(data: bytes) -> Hello:
    """What the first bytes of a tunnel say: a ClientHello's server name, or why not. Bytes
    that start like any TLS record (types 20-23, version 3.x) count as TLS: a record other
    than a handshake in front of the ClientHello would carry it past this check."""
    if data[:1] not in (b"", b"\x14", b"\x15", b"\x16", b"\x17") or data[1:2] not in (b"", b"\x03"):
        return Hello(NOT_TLS)
    records, handshake = _Reader(data), b""
    while True:
        try:
            ctype, major, _minor, length = (records.int(1), records.int(1), records.int(1),
                                            records.int(2))
        except _Short:
            return Hello(INCOMPLETE)
        if ctype != 22 or major != 3 or not 0 < length <= 1 << 14:
            return Hello(MALFORMED)
        try:
            handshake += records.take(length)
        except _Short:
            return Hello(INCOMPLETE)
        if len(handshake) >= 4:
            if handshake[0] != 1:
                return Hello(MALFORMED)
            end = 4 + int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= end:
                try:
                    return _server_name(_Reader(handshake[4:end]))
                except (_Short, UnicodeDecodeError):
                    return Hello(MALFORMED)


def _server_name(body: _Reader) -> Hello:
    body.take(2 + 32)  # legacy_version, random
    body.vector(1), body.vector(2), body.vector(1)  # session_id, cipher_suites, compression
    if body.done():
        return Hello(NO_SNI)
    extensions = body.vector(2)
    while not extensions.done():
        kind, data = extensions.int(2), extensions.vector(2)
        if kind == 0:
            names = data.vector(2)
            while not names.done():
                name_type, name = names.int(1), names.take(names.int(2))
                if name_type == 0:
                    return Hello(SNI, name.decode("ascii").lower().removesuffix("."))
            return Hello(NO_SNI)
    return Hello(NO_SNI)


def tunnel_refusal(allowed: Iterable[AllowedHost], req: Request, hello: Hello) -> str | None:
    """Why a tunnel's first bytes are refused: a server name that no allowed entry covers on
    this port (domain fronting by SNI), or a ClientHello the proxy cannot read."""
    if hello.status in (INCOMPLETE, MALFORMED):
        return f"a TLS ClientHello the proxy cannot read ({hello.status})"
    if hello.status == SNI and hello.sni != req.host:
        why = refusal(allowed, hello.sni, req.port)
        if why:
            return f"TLS server name {hello.sni!r} in a tunnel to {req.host}: {why}"
    return None


# ---------------------------------------------------------------------------
# The proxy (outside the sandbox)


class ConnectionLog:
    """One JSON line per connection, flushed as written; after MAX_LOG_LINES, a count."""

    def __init__(self, path: Path):
        self.file: IO[str] = path.open("a", buffering=1)
        self.lines = 0
        self.totals = {"allowed": 0, "refused": 0, "error": 0, "unlogged": 0}

    def write(self, rec: dict) -> None:
        self.totals[rec["decision"]] += 1
        if self.lines >= MAX_LOG_LINES:
            self.totals["unlogged"] += 1
            return
        self.lines += 1
        self.file.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self.file.write(json.dumps({"event": "summary"} | self.totals) + "\n")
        self.file.close()


class _Refused(Exception):
    pass


class Proxy:
    def __init__(self, allowed: list[AllowedHost], log: ConnectionLog):
        self.allowed, self.log = allowed, log
        self.count = 0
        self.active: set[asyncio.Task] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        rec: dict = {"id": self.count, "start": round(time.time(), 3), "end": None,
                     "request": None, "method": None, "host": None, "port": None, "url": None,
                     "tls": None, "sni": None, "peer": None, "bytes_up": 0, "bytes_down": 0,
                     "decision": "error", "reason": None}
        task = asyncio.current_task()
        self.active.add(task)
        try:
            if len(self.active) > MAX_CONNECTIONS:
                raise BadRequest(f"more than {MAX_CONNECTIONS} connections at a time", 503)
            await self._serve(reader, writer, rec)
        except BadRequest as e:
            rec["reason"] = str(e)
            _reply(writer, e.status, str(e))
            await _linger(reader, writer)
        except _Refused as e:
            rec["decision"], rec["reason"] = "refused", str(e)
            await _linger(reader, writer)
        except asyncio.CancelledError:
            rec["reason"] = rec["reason"] or "the proxy stopped (the run ended)"
        except asyncio.TimeoutError:  # the head and the connect have their own reasons
            rec["reason"] = f"no byte either way for {IDLE_TIMEOUT_S:g} s"
        except (OSError, asyncio.IncompleteReadError) as e:
            rec["reason"] = rec["reason"] or f"{type(e).__name__}: {e}"
        finally:
            writer.close()
            rec["end"] = round(time.time(), 3)
            self.log.write(rec)
            self.active.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     rec: dict) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (asyncio.LimitOverrunError, ValueError):
            raise BadRequest(f"request header over {MAX_HEAD} bytes", 431) from None
        except asyncio.TimeoutError:
            raise BadRequest(f"no whole request header within {HEAD_TIMEOUT_S:g} s", 408) from None
        except asyncio.IncompleteReadError as e:
            rec["request"] = request_line(e.partial) or None
            raise BadRequest("closed before a whole request header") from None
        rec["request"] = request_line(head)
        req = parse_request(head)
        rec.update(method=req.method, host=req.host, port=req.port, url=req.url and req.url[:2000])
        why = refusal(self.allowed, req.host, req.port)
        if why:
            _reply(writer, 403, why)
            raise _Refused(why)
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(req.host, req.port), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            raise BadRequest(f"could not reach {req.host}:{req.port} ({type(e).__name__}: {e})",
                             502) from None
        try:
            peer = upstream.get_extra_info("peername")
            rec["peer"] = f"{peer[0]}:{peer[1]}" if peer else None
            rec["decision"] = "allowed"
            if req.method == "CONNECT":
                writer.write(f"{req.version} 200 Connection established\r\n\r\n".encode())
                await _relay(reader, writer, up_reader, upstream, rec,
                             hold=lambda data, eof: self._hello_passes(req, rec, data, eof))
            else:
                await _relay(reader, writer, up_reader, upstream, rec, prefix=origin_request(req))
        finally:
            upstream.close()

    def _hello_passes(self, req: Request, rec: dict, data: bytes, eof: bool) -> bool:
        """A tunnel's first bytes may go on: True; more are needed: False; refused: _Refused.
        The host's first bytes (SSH, SMTP banners) flow meanwhile."""
        hello = client_hello(data)
        if hello.status == INCOMPLETE and not eof and len(data) < MAX_HELLO:
            return False
        if not data:
            return True
        rec["tls"], rec["sni"] = (None if hello.status == NOT_TLS else hello.status), hello.sni
        why = tunnel_refusal(self.allowed, req, hello)
        if why:
            raise _Refused(why)
        return True


def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = (reason + "\n").encode("utf-8", "replace")
    phrase = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431:
              "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable"}
    with contextlib.suppress(Exception):
        writer.write(f"HTTP/1.1 {status} {phrase.get(status, 'Error')}\r\nContent-Type: text/plain"
                     f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send the answer, then read what the agent still sends for a moment: a socket closed
    with unread bytes resets, and the reset can overtake the answer."""
    with contextlib.suppress(Exception):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        deadline, left = time.monotonic() + 1.0, MAX_HELLO
        while left > 0 and time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(CHUNK), deadline - time.monotonic())
            if not data:
                break
            left -= len(data)


async def _relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                 up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter, rec: dict,
                 prefix: bytes = b"", hold: Callable[[bytes, bool], bool] | None = None) -> None:
    """Copy both ways until both ends have closed, or neither sent a byte for IDLE_TIMEOUT_S.
    `prefix` goes to the host first; the agent's first bytes are held until `hold` lets
    them go (or raises)."""
    last = [time.monotonic()]

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, key: str,
                   hold: Callable[[bytes, bool], bool] | None = None) -> None:
        held = b""
        while True:
            try:
                data = await asyncio.wait_for(src.read(CHUNK), IDLE_TIMEOUT_S)
            except asyncio.TimeoutError:
                if time.monotonic() - last[0] < IDLE_TIMEOUT_S:
                    continue  # the other direction is busy
                raise
            if hold is not None:
                held += data
                if not hold(held, not data):
                    continue
                data, held, hold = held, b"", None
            if not data:
                if dst.can_write_eof():
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                return
            last[0] = time.monotonic()
            rec[key] += len(data)
            dst.write(data)
            await dst.drain()

    if prefix:
        rec["bytes_up"] += len(prefix)
        up_w.write(prefix)
        await up_w.drain()
    tasks = [asyncio.ensure_future(pump(client_r, up_w, "bytes_up", hold)),
             asyncio.ensure_future(pump(up_r, client_w, "bytes_down"))]
    try:
        for t in asyncio.as_completed(tasks):
            await t
    finally:
        for t in tasks:
            t.cancel()


async def serve(socket_path: str, log_path: Path, allowed: list[AllowedHost]) -> None:
    """Serve on the Unix socket until SIGTERM or SIGINT, then log what is still open."""
    log = ConnectionLog(log_path)
    proxy = Proxy(allowed, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_unix_server(proxy.handle, path=socket_path, limit=MAX_HEAD)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        for task in list(proxy.active):
            task.cancel()
        await asyncio.gather(*proxy.active, return_exceptions=True)
        log.close()


# ---------------------------------------------------------------------------
# The forwarder (inside the sandbox): 127.0.0.1:PORT -> the Unix socket


def forward(port: int, socket_path: str, argv: list[str]) -> int:
    """Listen on 127.0.0.1:`port`, start the agent, relay each connection to the proxy's
    socket until the agent exits; its exit status. The listener exists before the agent
    starts. What the forwarder does decides nothing: the proxy decides, so an agent that
    kills or replaces it only loses its own way out."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(MAX_CONNECTIONS)
    # At the limit every process gets SIGTERM: the forwarder stays for the agent's grace
    # period (a handler, not SIG_IGN, so the agent does not inherit it).
    signal.signal(signal.SIGTERM, lambda *_: None)
    agent = subprocess.Popen(argv)
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    threading.Thread(target=_accept, args=(listener, socket_path, slots), daemon=True).start()
    code = agent.wait()
    return code if code >= 0 else 128 - code


def _accept(listener: socket.socket, socket_path: str, slots: threading.BoundedSemaphore) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # out of file descriptors, say: the agent's doing; try again
            time.sleep(0.1)
            continue
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=_tunnel, args=(client, socket_path, slots), daemon=True).start()


def _tunnel(client: socket.socket, socket_path: str, slots: threading.BoundedSemaphore) -> None:
    try:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
            up.connect(socket_path)
            other = threading.Thread(target=_copy, args=(up, client), daemon=True)
            other.start()
            _copy(client, up)
            other.join()
    except OSError:
        pass
    finally:
        slots.release()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------
# The harness's side


SOURCE_ROOT = Path(__file__).resolve().parents[2]
# This module in an isolated interpreter (`python -I`: no PYTHON* variables, no user site,
# not the current folder on sys.path), with this harness's source folder put first by hand.
BOOT = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
        "runpy.run_module('spore.posttrain.egress', run_name='__main__', alter_sys=True)")


def module_argv(*args: str) -> list[str]:
    return [sys.executable, "-I", "-c", BOOT, str(SOURCE_ROOT), *args]


def proxy_env() -> dict[str, str]:
    """The variables HTTP clients read (curl, requests, httpx, urllib, pip), both cases."""
    return {name: PROXY_URL for var in PROXY_VARS[:3] for name in (var, var.lower())}


def without_proxy_vars(env: dict[str, str]) -> dict[str, str]:
    """An inherited NO_PROXY would send some hosts around the proxy, into no network."""
    return {k: v for k, v in env.items() if k.upper() not in PROXY_VARS}


class EgressProxy:
    """The proxy process for one run: started before the agent, stopped after it.

        with EgressProxy(allowed, RUN / "egress", RUN / "trace" / "network.jsonl") as proxy:
            run the agent as proxy.wrap(argv), with proxy_env(), seeing proxy.folder
    """

    def __init__(self, allowed: list[AllowedHost], folder: Path, log: Path,
                 ready_timeout: float = 20.0):
        self.allowed, self.folder, self.log = allowed, folder, log
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> EgressProxy:
        self.folder.mkdir(mode=0o700)
        argv = module_argv("serve", "--socket", SOCKET, "--log", str(self.log.resolve()),
                           "--parent", str(os.getpid()), *map(str, self.allowed))
        with self.log.with_suffix(".stderr.txt").open("wb") as err:
            # relative to its folder: a Unix socket's path is at most 107 bytes
            self.proc = subprocess.Popen(argv, cwd=self.folder, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout)
        if not ready or self.proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError(f"the egress proxy did not start; see {self.log.with_suffix('.stderr.txt')}")
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        """The agent's command behind the forwarder; the socket named from work/ (the cwd)."""
        return module_argv("forward", "--port", str(PORT), "--socket",
                           f"../{self.folder.name}/{SOCKET}", "--", *argv)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spore.posttrain.egress")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--socket", required=True)
    s.add_argument("--log", type=Path, required=True)
    s.add_argument("--parent", type=int, required=True)
    s.add_argument("allowed", nargs="*", type=parse_allow_host)
    f = sub.add_parser("forward")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--socket", required=True)
    f.add_argument("agent", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.command == "serve":
        from spore.swarm.storeserver import die_with_parent

        die_with_parent(args.parent)  # SIGTERM: the connections still open are logged
        asyncio.run(serve(args.socket, args.log, args.allowed))
        return 0
    agent = args.agent[1:] if args.agent[:1] == ["--"] else args.agent
    return forward(args.port, args.socket, agent)


if __name__ == "__main__":
    sys.exit(main())
