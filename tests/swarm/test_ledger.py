"""The hash-chained, signed ledger (spore.swarm.ledger) and `spore ledger`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from spore.swarm.identity import Identity
from spore.swarm.ledger import SQLiteLedger, show, verify_ledger

VALIDATOR = Identity.from_seed(b"v" * 32)
OTHER = Identity.from_seed(b"o" * 32)


def make_ledger(path, identity=VALIDATOR, windows=4):
    led = SQLiteLedger(path, identity)
    led.append("genesis", None, {"manifest": {"validator": VALIDATOR.hex, "run_id": "r", "windows": windows,
                                              "window_seconds": 4.0, "preset": "tiny"}})
    for w in range(windows):
        led.append("window", w, {
            "window": w, "eval_loss": 5.0 - w, "theta": f"{w:064x}", "submissions": [{"peer": "ab" * 32}],
            "rejected": [{"peer": "cd" * 32, "key": "k", "reason": "late", "detail": "stored 0.3s after"}],
            "scores": {}, "ratings": {}, "gather_next": ["ab" * 32],
        })
    led.close()
    return path


def test_an_untouched_ledger_verifies(tmp_path):
    r = verify_ledger(make_ledger(tmp_path / "l.sqlite"))
    assert r.ok and r.records == 5


def raw_rows(path):
    db = sqlite3.connect(path)
    return db, db.execute("SELECT seq, body, prev, hash, signature FROM records ORDER BY seq").fetchall()


@pytest.mark.parametrize("column", ["body", "prev", "hash", "signature"])
@pytest.mark.parametrize("seq", [0, 2, 4])
def test_changing_any_single_byte_is_caught_at_that_record(tmp_path, column, seq):
    path = make_ledger(tmp_path / "l.sqlite")
    db, rows = raw_rows(path)
    cols = {"body": 1, "prev": 2, "hash": 3, "signature": 4}
    value = rows[seq][cols[column]]
    data = bytearray(value.encode() if isinstance(value, str) else value)
    for offset in (0, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[offset] ^= 0x01
        new = tampered.decode("latin-1") if column == "body" else bytes(tampered)
        db.execute(f"UPDATE records SET {column} = ? WHERE seq = ?", (new, seq))
        db.commit()
        r = verify_ledger(path)
        assert not r.ok and r.first_bad == seq, (offset, r)
        db.execute(f"UPDATE records SET {column} = ? WHERE seq = ?", (value, seq))
        db.commit()
    assert verify_ledger(path).ok


def test_removed_or_reordered_records_break_the_chain(tmp_path):
    path = make_ledger(tmp_path / "l.sqlite")
    db = sqlite3.connect(path)
    db.execute("DELETE FROM records WHERE seq = 2")
    db.commit()
    r = verify_ledger(path)
    assert not r.ok and r.first_bad == 3 and "removed" in r.problem


def test_a_ledger_rewritten_by_someone_else_fails_when_the_validator_is_pinned(tmp_path):
    path = tmp_path / "l.sqlite"
    led = SQLiteLedger(path, OTHER)
    led.append("genesis", None, {"manifest": {"validator": OTHER.hex}})
    led.close()
    assert verify_ledger(path).ok  # self-consistent...
    r = verify_ledger(path, VALIDATOR.id)  # ...but not the run's validator
    assert not r.ok and r.first_bad == 0


def test_records_signed_by_another_key_fail(tmp_path):
    path = tmp_path / "l.sqlite"
    led = SQLiteLedger(path, OTHER)  # claims VALIDATOR in genesis but signs with OTHER
    led.append("genesis", None, {"manifest": {"validator": VALIDATOR.hex}})
    led.close()
    r = verify_ledger(path)
    assert not r.ok and r.first_bad == 0 and "signature" in r.problem


def test_history_survives_reopening(tmp_path):
    path = make_ledger(tmp_path / "l.sqlite", windows=2)
    led = SQLiteLedger(path, VALIDATOR)  # a restarted validator appends where it left off
    led.append("window", 2, {"window": 2})
    led.close()
    r = verify_ledger(path)
    assert r.ok and r.records == 4


def test_not_a_ledger(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    r = verify_ledger(junk)
    assert not r.ok and "not a readable ledger" in r.problem
    with pytest.raises(FileNotFoundError):
        verify_ledger(tmp_path / "missing.sqlite")


def test_cli_verify_and_show(tmp_path):
    path = make_ledger(tmp_path / "ledger.sqlite")
    ok = subprocess.run(
        [sys.executable, "-m", "spore", "ledger", "verify", str(tmp_path)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "5 records" in ok.stdout
    out = subprocess.run([sys.executable, "-m", "spore", "ledger", "show", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "late: stored 0.3s after" in out.stdout and "#4 window 3" in out.stdout
    db = sqlite3.connect(path)
    db.execute("UPDATE records SET body = replace(body, '\"late\"', '\"lATE\"') WHERE seq = 3")
    db.commit()
    bad = subprocess.run([sys.executable, "-m", "spore", "ledger", "verify", str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "record #3" in bad.stdout
    missing = subprocess.run([sys.executable, "-m", "spore", "ledger", "verify", str(tmp_path / "nope.sqlite")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no ledger at" in missing.stderr
    assert next(iter(show(make_ledger(tmp_path / "b.sqlite", windows=1)))).startswith("#0 genesis")
