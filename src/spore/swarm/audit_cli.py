"""`spore ledger audit RUN_DIR|STORE`: find the ledger and the store, then audit.py does the work.

A run folder brings its signed ledger (`ledger.sqlite`, verified first) and,
by default, its store in `RUN/store`: a store-service folder is served again,
read-only in effect, so that its arrival stamps are what the replay sees.
A store URL (or folder) alone is audited from the validator's signed window
records in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spore.swarm.audit import AuditResult, audit
from spore.swarm.identity import parse_id
from spore.swarm.protocol import MAX_JSON_BYTES, RUN_KEY, checkpoint_keys, open_json, record_key
from spore.swarm.store import NotFound, Store, open_store

LEDGER_FILE = "ledger.sqlite"
SERVICE_INDEX = Path(".store") / "index.sqlite"


def run_audit(path: str, store_url: str | None, validator: str | None) -> int:
    pinned = parse_id(validator) if validator else None
    folder = Path(path)
    if folder.is_dir() and (folder / LEDGER_FILE).is_file():
        result = audit_run_folder(folder, store_url, pinned)
    else:
        result = audit_store(open_store(store_url or path, create=False), pinned)
    print(result.describe())
    return 0 if result.ok else 1


def audit_run_folder(folder: Path, store_url: str | None, pinned: bytes | None) -> AuditResult:
    from spore.swarm.ledger import SQLiteLedger, verify_ledger

    check = verify_ledger(folder / LEDGER_FILE, pinned)
    if not check.ok:
        return AuditResult(False, 0, None, "ledger", f"the ledger does not verify: record #{check.first_bad}: "
                                                     f"{check.problem}")
    led = SQLiteLedger.open_readonly(folder / LEDGER_FILE)
    try:
        records = list(led.records())
    finally:
        led.close()
    genesis = records[0].body
    windows = [r.body for r in records if r.kind == "window"]
    with _store_for(folder, store_url, genesis["manifest"]["validator"]) as store:
        return audit(store, genesis, windows)


def audit_store(store: Store, pinned: bytes | None) -> AuditResult:
    """Audit from the store alone: run.json, checkpoint 0 and the signed window records."""
    try:
        manifest, signer = open_json(store.get(RUN_KEY, MAX_JSON_BYTES), signer=pinned)
        ck, _ = open_json(store.get(checkpoint_keys(0)[1], MAX_JSON_BYTES), signer=signer)
    except NotFound as e:
        return AuditResult(False, 0, None, "manifest", f"no run in this store: {e} is missing")
    genesis = {"manifest": manifest, "checkpoint": {"theta": ck["theta"]},
               "scoring": manifest.get("extra", {}).get("scoring", {"gather_size": manifest["gather_size"]})}
    return audit(store, genesis, _window_records(store, signer, int(manifest["windows"])))


def _window_records(store: Store, signer: bytes, windows: int) -> Iterator[dict[str, Any]]:
    for w in range(windows):
        try:
            body, _ = open_json(store.get(record_key(w), MAX_JSON_BYTES), signer=signer)
        except NotFound:
            return
        yield body


@contextlib.contextmanager
def _store_for(folder: Path, store_url: str | None, validator: str) -> Iterator[Store]:
    if store_url is not None:
        yield open_store(store_url, create=False)
        return
    root = folder / "store"
    if (root / SERVICE_INDEX).is_file():
        from spore.swarm.storeserver import start_store_server

        url, proc = start_store_server(root, validator)
        try:
            yield open_store(url)
        finally:
            proc.kill()
            proc.wait()
        return
    yield open_store(str(root), create=False)
