"""A raw client of the store service (docs/protocol.md section 2, "The store service")."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass

from spore.swarm.identity import Identity


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    @property
    def error(self) -> str:
        try:
            return json.loads(self.body).get("error", "")
        except Exception:
            return ""


def request_message(method: str, key: str, body: bytes, t: str, nonce: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return b"spore/store-request/v1\0" + f"{method}\n{key}\n{digest}\n{t}\n{nonce}".encode()


def signed_headers(identity: Identity, method: str, key: str, body: bytes, *,
                   t: int | None = None, nonce: str | None = None,
                   signer: str | None = None) -> dict:
    t_s = str(int(time.time()) if t is None else t)
    nonce = nonce or os.urandom(16).hex()
    sig = identity.sign(request_message(method, key, body, t_s, nonce)).hex()
    return {"X-Spore-Signer": signer or identity.hex, "X-Spore-Time": t_s,
            "X-Spore-Nonce": nonce, "X-Spore-Signature": sig}


class RawStore:
    """Talks to `http://HOST:PORT`; every method returns the service's Reply, never raises on refusals."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urllib.parse.urlparse(url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, r.read(), dict(r.getheaders()))
        finally:
            conn.close()

    def put(self, identity: Identity, key: str, body: bytes, **kw) -> tuple[Reply, dict]:
        h = signed_headers(identity, "PUT", key, body, **kw)
        h["Content-Length"] = str(len(body))
        return self.send("PUT", "/o/" + key, body, h), h

    def delete(self, identity: Identity, key: str, **kw) -> Reply:
        return self.send("DELETE", "/o/" + key, None, signed_headers(identity, "DELETE", key, b"", **kw))

    def get(self, key: str) -> Reply:
        return self.send("GET", "/o/" + key)

    def list(self, prefix: str) -> list[dict]:
        r = self.send("GET", "/list?prefix=" + urllib.parse.quote(prefix, safe=""))
        return json.loads(r.body)["objects"] if r.status == 200 else []

    def raw_socket(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=self.timeout)
