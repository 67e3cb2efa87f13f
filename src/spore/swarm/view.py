"""What an outsider sees of a run: one JSON document built from signed objects (pure logic).

`spore swarm watch` and `spore swarm report --html` show this document; it is
computed here from what the store publishes (the run manifest, window records,
gather lists, peers' status objects, the listing of updates) and, for a run
folder, the ledger's verification, with no I/O: `spore.swarm.watch` reads the
store and calls `run_view`.

The figures are the ones `spore swarm run` writes to summary.json, computed the
same way (docs/protocol.md section 7 names every field):

    held-out loss       the window record's `eval_loss` (before window 0: the
                        manifest's `extra.initial_eval_loss`)
    bytes per update    the median size of the accepted submissions, all windows
    compression         dense fp32 bytes of the trainable tensors / that median
    validator busy      `measure_seconds` / `window_seconds`: the share of a window
                        the validator spent measuring (its budget is 0.3)
    updates used        aggregated / accepted: the share of valid updates applied

An outsider knows no peer's kind (honest or not), so "windows without an
applied update" counts every peer, where summary.json's
`windows_without_training` counts honest peers only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

VALIDATOR_BUDGET = 0.3  # share of a window the validator may spend measuring (protocol section 7)


@dataclass
class StoreSnapshot:
    """The verified bodies a reader found, by window; everything optional while a run starts."""

    manifest: dict[str, Any] | None = None
    validator: str = ""  # hex id that signed the manifest and the records
    validator_source: str = ""  # how the reader knows it: "ledger", "pinned" or "run.json signer"
    theta0: str | None = None  # checkpoint 0's theta digest
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    gathers: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # window -> peer -> body
    uploads: dict[int, dict[str, int]] = field(default_factory=dict)  # window -> peer -> bytes listed
    announced: list[str] = field(default_factory=list)
    dense_bytes: int | None = None
    problems: list[str] = field(default_factory=list)  # objects that did not verify, and why


@dataclass
class LedgerState:
    """`verify_ledger`'s answer plus the ledger's window records, to compare with the store's."""

    path: str
    ok: bool
    records: int
    first_bad: int | None
    problem: str
    validator: str | None  # the genesis record's validator id
    windows: dict[int, dict[str, Any]]  # window -> record body


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def run_view(snap: StoreSnapshot, ledger: LedgerState | None, now: float, source: dict[str, Any]) -> dict[str, Any]:
    m = snap.manifest
    view: dict[str, Any] = {"now": now, "source": source, "problems": snap.problems[-20:],
                            "ledger": ledger_view(ledger, snap)}
    if m is None:
        return view | {"state": "waiting", "state_text": "waiting for the validator to publish run.json"}
    windows = int(m["windows"])
    window_seconds = float(m["window_seconds"])
    current = int((now - float(m["t0"])) // window_seconds)
    done = all(w in snap.records for w in range(windows))
    if done:
        state, text = "finished", f"finished: all {windows} windows recorded"
    elif current < 0:
        state, text = "starting", f"window 0 opens in {float(m['t0']) - now:.0f} s"
    elif current >= windows:
        state, text = "finishing", "the last window closed; waiting for its record"
    else:
        state, text = "running", f"window {current} of {windows} is open"
    initial = m.get("extra", {}).get("initial_eval_loss")
    view |= {
        "state": state,
        "state_text": text,
        "current_window": min(max(current, 0), windows - 1) if not done else None,
        "run": {
            "run_id": m["run_id"], "validator": snap.validator, "validator_source": snap.validator_source,
            "preset": m["preset"], "windows": windows, "window_seconds": window_seconds, "t0": m["t0"],
            "warmup_windows": m["warmup_windows"], "gather_size": m["gather_size"],
            "aggregation": m["aggregation"], "initial_eval_loss": initial,
            "dense_fp32_bytes": snap.dense_bytes,
        },
        "windows": [window_view(snap, w, window_seconds) for w in range(windows)
                    if w in snap.records or w <= current],
    }
    view["totals"] = totals(view["windows"], snap, initial, window_seconds)
    return view


def expected_theta(snap: StoreSnapshot, w: int) -> str | None:
    """The digest every peer should hold at the start of window w."""
    if w == 0:
        return snap.theta0
    prev = snap.records.get(w - 1)
    return prev["theta"] if prev else None


def window_view(snap: StoreSnapshot, w: int, window_seconds: float) -> dict[str, Any]:
    rec = snap.records.get(w)
    gather = rec["gather"] if rec else snap.gathers.get(w, {}).get("peers")
    statuses = snap.statuses.get(w, {})
    theta = expected_theta(snap, w)
    uploads = snap.uploads.get(w, {})
    out: dict[str, Any] = {"window": w, "recorded": rec is not None, "gather": gather}
    if rec is None:
        out |= {"submitted": len(uploads), "bytes": sorted(uploads.values())}
        peers = set(snap.announced) | set(uploads) | set(statuses) | set(gather or [])
        out["peers"] = [peer_row(p, None, uploads, gather, statuses.get(p), theta) for p in sorted(peers)]
        return out
    sizes = [s["bytes"] for s in rec["submissions"]]
    accepted = {s["peer"] for s in rec["submissions"]}
    busy = rec.get("measure_seconds")
    out |= {
        "eval_loss": rec.get("eval_loss"),
        "accepted": len(sizes),
        "rejected": [{"peer": x.get("peer", ""), "key": x.get("key", ""), "reason": x.get("reason", ""),
                      "detail": x.get("detail", "")} for x in rec["rejected"]],
        "bytes": sizes,
        "bytes_median": median(sizes),
        "aggregated": len(rec.get("aggregated", [])),
        "updates_used": len(set(rec.get("aggregated", [])) & accepted) / len(accepted) if accepted else None,
        "measured": len(rec.get("sampled", [])),
        "measure_seconds": busy,
        "busy": busy / window_seconds if busy is not None else None,
        "gather_next": rec.get("gather_next"),
        "theta": rec.get("theta"),
    }
    peers = (set(snap.announced) | set(rec.get("known", [])) | accepted | set(rec.get("scores", {}))
             | set(rec.get("ratings", {})) | set(statuses) | set(gather or []))
    peers |= {x["peer"] for x in rec["rejected"] if x.get("peer")}
    rows = [peer_row(p, rec, uploads, gather, statuses.get(p), theta) for p in peers]
    rows.sort(key=lambda r: (-(r["rating"] if r["rating"] is not None else -1.0), r["peer"]))
    # A rejection the validator could not pin on a peer (a key that names no id) still shows.
    rows += [{"peer": "", "key": x.get("key", ""), "submitted": True, "accepted": False,
              "rejected": {"reason": x.get("reason", ""), "detail": x.get("detail", "")}}
             for x in rec["rejected"] if not x.get("peer")]
    out["peers"] = rows
    return out


def peer_row(p: str, rec: dict[str, Any] | None, uploads: dict[str, int], gather: list[str] | None,
             status: dict[str, Any] | None, theta: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"peer": p, "in_gather": p in (gather or [])}
    if status is not None:
        row["status"] = {"train_loss": status.get("train_loss"), "note": str(status.get("note", "")),
                         "uploaded": status.get("uploaded"),
                         "theta_ok": None if theta is None else status.get("theta") == theta}
    if rec is None:
        row |= {"submitted": p in uploads, "bytes": uploads.get(p)}
        return row
    sub = next((s for s in rec["submissions"] if s["peer"] == p), None)
    rej = next((x for x in rec["rejected"] if x.get("peer") == p), None)
    score = rec.get("scores", {}).get(p)
    rating = rec.get("ratings", {}).get(p)
    row |= {
        "submitted": sub is not None or rej is not None,
        "bytes": sub["bytes"] if sub else None,
        "accepted": True if sub else (False if rej else None),
        "rejected": {"reason": rej.get("reason", ""), "detail": rej.get("detail", "")} if rej else None,
        "measured": p in rec.get("sampled", []),
        "outcome": score.get("outcome") if score else None,
        "gradient_score": score.get("gradient_score") if score else None,
        "fit_z": score.get("fit_z") if score else None,
        "copy_of": score.get("copy_of") if score else None,
        "restates": score.get("restates") if score else None,
        "rating": rating.get("final") if rating else None,
        "ordinal": rating.get("ordinal") if rating else None,
        "ema": rating.get("ema") if rating else None,
        "weight": rec.get("weights", {}).get(p),
        "aggregated": p in rec.get("aggregated", []),
        "in_gather_next": p in (rec.get("gather_next") or []),
    }
    return row


def totals(windows: list[dict[str, Any]], snap: StoreSnapshot, initial: float | None,
           window_seconds: float) -> dict[str, Any]:
    recorded = [w for w in windows if w["recorded"]]
    sizes = [b for w in recorded for b in w["bytes"]]
    wire = median(sizes)
    busy = median([w["measure_seconds"] for w in recorded if w["measure_seconds"] is not None])
    reports = agreeing = 0
    for w in range(len(snap.records) + 1):
        theta = expected_theta(snap, w)
        for body in snap.statuses.get(w, {}).values():
            if theta is not None:
                reports += 1
                agreeing += body.get("theta") == theta
    return {
        "initial_eval_loss": initial,
        "latest_eval_loss": recorded[-1]["eval_loss"] if recorded else None,
        "windows_recorded": len(recorded),
        "wire_bytes_per_update": wire,
        "dense_fp32_bytes": snap.dense_bytes,
        "compression_ratio": snap.dense_bytes / wire if wire and snap.dense_bytes else None,
        "measure_seconds": busy,
        "busy": busy / window_seconds if busy is not None else None,
        "budget": VALIDATOR_BUDGET,
        "windows_without_update": [w["window"] for w in recorded if not w["aggregated"]],
        "accepted": len(sizes),
        "rejected": sum(len(w["rejected"]) for w in recorded),
        "theta_reports": reports,
        "theta_agreeing": agreeing,
    }


def ledger_view(ledger: LedgerState | None, snap: StoreSnapshot) -> dict[str, Any] | None:
    """The ledger's verification, and whether its window records are the store's, byte for byte."""
    if ledger is None:
        return None
    same, differ, only_ledger = [], [], []
    for w, body in sorted(ledger.windows.items()):
        rec = snap.records.get(w)
        if rec is None:
            only_ledger.append(w)
        elif rec == body:
            same.append(w)
        else:
            differ.append(w)
    return {
        "path": ledger.path, "ok": ledger.ok, "records": ledger.records, "first_bad": ledger.first_bad,
        "problem": ledger.problem, "validator": ledger.validator,
        "validator_matches": None if ledger.validator is None or not snap.validator
        else ledger.validator == snap.validator,
        "windows_same": same, "windows_differ": differ, "windows_only_in_ledger": only_ledger,
        "windows_only_in_store": sorted(set(snap.records) - set(ledger.windows)),
    }
