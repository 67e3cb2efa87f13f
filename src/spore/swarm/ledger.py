"""The ledger: an append-only, hash-chained, signed history of a run.

Each record is (seq, kind, window, body, prev, hash, signature):

    hash      = SHA-256(b"spore/ledger/v1\\0" + prev + u64 seq + kind + b"\\0" + canonical(body))
    signature = ed25519 signature by the validator of that hash
    prev      = the previous record's hash (32 zero bytes for the genesis record)

The genesis record's body holds the run manifest, and so the validator's id;
`verify` checks every record against it (or against an id the caller pins).
Changing any stored byte breaks the hash or the signature of that record, and
removing or reordering records breaks the chain at the next one.

Records live in SQLite (the embedded default). `Ledger` is the interface a
chain backend would implement; `SQLiteLedger` is the one we ship.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spore.swarm.identity import Identity, verify
from spore.swarm.protocol import canonical

DOMAIN = b"spore/ledger/v1\0"
GENESIS_PREV = bytes(32)


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    window: int | None
    body: dict[str, Any]
    prev: bytes
    hash: bytes
    signature: bytes


def record_hash(prev: bytes, seq: int, kind: str, body_bytes: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + prev + struct.pack("<Q", seq) + kind.encode() + b"\0" + body_bytes).digest()


class Ledger(Protocol):
    def append(self, kind: str, window: int | None, body: dict[str, Any]) -> Record: ...

    def records(self) -> Iterator[Record]: ...

    def last(self, kind: str | None = None) -> Record | None: ...


class SQLiteLedger:
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS records (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        window INTEGER,
        body TEXT NOT NULL,
        prev BLOB NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL
    )"""

    def __init__(self, path: str | Path, identity: Identity | None = None) -> None:
        self.path = Path(path)
        self.identity = identity
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; we BEGIN explicitly
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(self.SCHEMA)

    @classmethod
    def open_readonly(cls, path: str | Path) -> SQLiteLedger:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no ledger at {path}")
        obj = cls.__new__(cls)
        obj.path, obj.identity = Path(path), None
        obj.db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        return obj

    def close(self) -> None:
        self.db.close()

    def append(self, kind: str, window: int | None, body: dict[str, Any]) -> Record:
        if self.identity is None:
            raise PermissionError("this ledger was opened without the validator's key")
        text = canonical(body)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (0, GENESIS_PREV) if row is None else (row[0] + 1, bytes(row[1]))
            h = record_hash(prev, seq, kind, text)
            sig = self.identity.sign(h)
            self.db.execute(
                "INSERT INTO records (seq, kind, window, body, prev, hash, signature) VALUES (?,?,?,?,?,?,?)",
                (seq, kind, window, text.decode(), prev, h, sig),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Record(seq, kind, window, body, prev, h, sig)

    def _rows(self) -> Iterator[tuple]:
        yield from self.db.execute("SELECT seq, kind, window, body, prev, hash, signature FROM records ORDER BY seq")

    def records(self) -> Iterator[Record]:
        for seq, kind, window, body, prev, h, sig in self._rows():
            yield Record(seq, kind, window, json.loads(body), bytes(prev), bytes(h), bytes(sig))

    def last(self, kind: str | None = None) -> Record | None:
        found = None
        for r in self.records():
            if kind is None or r.kind == kind:
                found = r
        return found


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    first_bad: int | None = None
    problem: str = ""


def verify_ledger(path: str | Path, validator: bytes | None = None) -> VerifyResult:
    """Recompute the chain and every signature; report the first bad record."""
    try:
        return _verify(path, validator)
    except sqlite3.DatabaseError as e:
        return VerifyResult(False, 0, None, f"not a readable ledger database: {e}")


def _verify(path: str | Path, validator: bytes | None) -> VerifyResult:
    led = SQLiteLedger.open_readonly(path)
    try:
        prev, expect_seq, signer, n = GENESIS_PREV, 0, validator, 0
        for seq, kind, _window, body, stored_prev, stored_hash, sig in led._rows():
            n += 1

            def bad(problem: str, seq: int = seq, n: int = n) -> VerifyResult:
                return VerifyResult(False, n, seq, problem)

            if seq != expect_seq:
                return bad(f"sequence jumps from {expect_seq - 1} to {seq}: a record was removed")
            if bytes(stored_prev) != prev:
                return bad("does not chain to the previous record")
            text = body.encode() if isinstance(body, str) else bytes(body)
            try:
                parsed = json.loads(text)
            except ValueError:
                return bad("body is not valid JSON")
            if canonical(parsed) != text:
                return bad("body is not in canonical form")
            if record_hash(prev, seq, kind, text) != bytes(stored_hash):
                return bad("hash does not match the record's content")
            if seq == 0:
                if kind != "genesis":
                    return bad("the first record is not a genesis record")
                try:
                    genesis_signer = bytes.fromhex(parsed["manifest"]["validator"])
                except (KeyError, TypeError, ValueError):
                    return bad("genesis record names no validator")
                if signer is not None and genesis_signer != signer:
                    return bad("genesis record names another validator than the one pinned")
                signer = genesis_signer
            assert signer is not None
            if not verify(signer, bytes(sig), bytes(stored_hash)):
                return bad("signature does not verify")
            prev, expect_seq = bytes(stored_hash), seq + 1
        if n == 0:
            return VerifyResult(False, 0, None, "the ledger is empty")
        return VerifyResult(True, n)
    finally:
        led.close()


def show(path: str | Path) -> Iterator[str]:
    """A readable history, one block per record."""
    led = SQLiteLedger.open_readonly(path)
    try:
        for r in led.records():
            b = r.body
            if r.kind == "genesis":
                m = b["manifest"]
                yield (f"#{r.seq} genesis  run {m['run_id']}  validator {m['validator'][:16]}  "
                       f"{m['windows']} windows x {m['window_seconds']}s  preset {m['preset']}")
                continue
            yield (f"#{r.seq} window {r.window}  eval loss {b.get('eval_loss', float('nan')):.4f}  "
                   f"accepted {len(b.get('submissions', []))}  rejected {len(b.get('rejected', []))}  "
                   f"theta {b.get('theta', '')[:12]}")
            for x in b.get("rejected", []):
                yield f"    rejected {x['peer'][:12] or '?':<12} {x['reason']}: {x['detail']}"
            for p, s in sorted(b.get("scores", {}).items()):
                g = s.get("gradient_score")
                yield (f"    peer {p[:12]}  gradient {'   n/a' if g is None else f'{g:+.4f}'}"
                       f"  outcome {s.get('outcome'):+.0f}  sync {s.get('sync', 0):.2f}"
                       + (f"  COPY of {s['copy_of'][:12]}" if s.get("copy_of") else ""))
            for p, s in sorted(b.get("ratings", {}).items(), key=lambda kv: -kv[1]["final"]):
                yield (f"    rating {p[:12]}  ordinal {s['ordinal']:+.2f}  ema {s['ema']:+.2f}  "
                       f"final {s['final']:.3f}")
            nxt = b.get("gather_next")
            if nxt is not None:
                names = ", ".join(p[:12] for p in nxt) or "(empty)"
                yield f"    gather list for window {(r.window or 0) + 1}: {names}"
            if b.get("checkpoint"):
                yield f"    checkpoint window {b['checkpoint']['window']} sha256 {b['checkpoint']['sha256'][:16]}"
    finally:
        led.close()
