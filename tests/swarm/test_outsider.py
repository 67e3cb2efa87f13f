"""Outsider attacks on a real network (issue 9), written from docs/protocol.md alone.

Each test starts `spore swarm run` (tiny preset, honest peers only) and, next
to it, the outsider attacker `tests/swarm/outsider/attacker.py` as its own
process, with fresh keys, the store service's URL and the validator's id. The
assertions say that each attack that failed against this version keeps
failing: no attacker id is ever on a gather list or weighted, honest peers
keep training, no process crashes or hangs, and `spore ledger audit` passes.
Attacks that worked are reported in the issue, not asserted here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = ROOT / "tests" / "swarm" / "outsider" / "attacker.py"
SPORE = [sys.executable, "-m", "spore"]


def _network(tmp: Path, scenario: str, windows: int, window_seconds: int, extra: list[str]) -> dict:
    out = tmp / "run"
    run_log = open(tmp / "run.out", "w")  # noqa: SIM115 (kept open for the child's lifetime)
    run = subprocess.Popen([*SPORE, "swarm", "run", "--preset", "tiny", "--peers", "3",
                            "--windows", str(windows), "--window-seconds", str(window_seconds),
                            "--out", str(out), *extra],
                           stdout=run_log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = validator = None
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        m = re.search(r"store service for .* on (http://\S+) \(validator ([0-9a-f]{64})\)",
                      (tmp / "run.out").read_text())
        if m:
            url, validator = m.group(1), m.group(2)
            break
        time.sleep(0.2)
    assert url, (tmp / "run.out").read_text()
    att_log = open(tmp / "attacker.out", "w")  # noqa: SIM115
    attacker = subprocess.Popen([sys.executable, str(ATTACKER), "--store", url, "--validator", validator,
                                 "--out", str(tmp / "att"), "--store-root", str(out / "store"),
                                 "--scenario", scenario, "--sybils", "40",
                                 "--skip", "replay_old,off_data,n70,n90"],
                                stdout=att_log, stderr=subprocess.STDOUT, cwd=ROOT)
    budget = 240 + windows * window_seconds * 4
    try:
        rc = run.wait(timeout=budget)
    finally:
        if run.poll() is None:
            run.kill()
    try:
        att_rc = attacker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        attacker.kill()
        att_rc = "hung"
    # rc 1 only says some window passed without honest training (checked, with tolerance, below)
    assert rc in (0, 1), (tmp / "run.out").read_text()[-3000:]
    assert att_rc == 0, (tmp / "attacker.out").read_text()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    store = out / "store"
    records = [json.loads((store / "windows" / f"{w:08d}.json").read_text())["body"] for w in range(windows)]
    attacks = json.loads((tmp / "att" / "attacks.json").read_text())
    ids = json.loads((tmp / "att" / "ids.json").read_text())
    audit = subprocess.run([*SPORE, "ledger", "audit", str(out)], capture_output=True, text=True, cwd=ROOT,
                           timeout=600)
    return {"summary": summary, "records": records, "attacks": attacks, "ids": ids, "audit": audit,
            "out": out, "manifest": json.loads((store / "run.json").read_text())["body"]}


def _attacker_ids(ids: dict) -> set[str]:
    mine = {v for k, v in ids.items() if isinstance(v, str)}
    return mine | set(ids.get("sybils", [])) | set(ids.get("starvers", []))


def _assert_no_attacker_influence(net: dict) -> None:
    mine = _attacker_ids(net["ids"])
    honest = set(net["ids"]["honest"])
    for rec in net["records"]:
        assert not mine & set(rec["gather"]), (rec["window"], "attacker on a gather list")
        assert not mine & set(rec.get("gather_next") or []), rec["window"]
        assert not mine & set(rec["aggregated"]), rec["window"]
        assert all(rec["weights"].get(p, 0) == 0 for p in mine), rec["window"]
        assert set(rec["aggregated"]) <= honest
    s = net["summary"]
    # a loaded CI machine can make honest peers miss a window by themselves; the attacks must not
    # stop training: most windows train and the model learns
    assert len(s["windows_without_training"]) <= len(net["records"]) // 3, s["windows_without_training"]
    assert s["final_eval_loss"] < s["initial_eval_loss"] - 0.5
    assert s["theta_consistent"] is True
    assert net["audit"].returncode == 0, net["audit"].stdout + net["audit"].stderr


@pytest.mark.slow
def test_outsider_attacks_fail(tmp_path: Path) -> None:
    """One network, every attack but measurement starvation (see the attacker's schedule):
    case-spelled ids, vandalism, replayed/stale/forged requests, malformed requests,
    a forged gather list (through the service and on disk), a FIFO/symlink/planted file,
    os.utime framing, a gather list deleted on disk, a Sybil flood, free-riding on the
    aggregate, noisy copiers (30/50/70/90% noise) and a poisoner. Slow-loris,
    measurement starvation, an off-data trainer (warm-up), replaying a w-2 update and
    a late upload after gather time work against this version: reported, not run here."""
    windows, ws = 7, 15
    net = _network(tmp_path, "main", windows, ws, [])
    a = net["attacks"]
    first = lambda name: next(iter(a[name].values()))  # noqa: E731

    # store service: access control, write-once, request signing
    case = first("case_sybil")
    assert case["upper"] == 403 and case["mixed"] == 403
    vandal = first("vandal")
    assert vandal["overwrite"] == 403 and vandal["delete"] == 403
    assert vandal["impersonate"] in (401, 409)  # 409 when the key exists: write-once is checked first
    assert vandal["peer_file"] == 403 and vandal["status_file"] == 403
    rep = first("replay_request")
    assert rep["first"] == 200 and rep["replay"] == 401 and rep["stale"] == 401 and rep["future"] == 401
    mal = first("malformed_requests")
    assert " 413 " in mal["oversized"] + " " and " 411 " in mal["chunked"] + " "
    assert mal["alive"] == 200
    for w, r in a["forge_gather"].items():
        if "skipped" not in r:
            assert r["copy_next"] == 403 and r["delete"] == 403, w

    # filesystem tampering: nothing planted is listed, the FIFO hangs nobody, utime changes no stamp
    recs = net["records"]
    planted = {net["ids"]["fifo"], net["ids"]["planted"], f"{7:064x}"}
    assert not planted & {s["peer"] for s in recs[1]["submissions"]}
    if "fs_utime" in a:
        key = first("fs_utime")["key"]
        sub = next(s for s in recs[1]["submissions"] if s["key"] == key)
        assert sub["stored_at"] > net["manifest"]["t0"] + 1 * net["manifest"]["window_seconds"] - 1
    assert not planted & {r["peer"] for rec in recs for r in rec["rejected"]}

    # copies, free-riders, replays and Sybils: never rated +1
    ids = net["ids"]
    # (70% and 90% noise copies are not caught: one was rated +1 in a CI run; reported, not run)
    for role in ("n30", "n50", "free_rider", "poison"):
        for rec in recs:
            sc = rec["scores"].get(ids[role])
            if sc is not None:
                assert sc["outcome"] == -1.0, (role, rec["window"], sc)
    for rec in recs:
        for p in ids["sybils"]:
            sc = rec["scores"].get(p)
            assert sc is None or sc["outcome"] == -1.0
    # the flood window: no Sybil is a copy-free free pass, and honest peers keep their places
    # (an honest peer may go unmeasured in that window: reported, not asserted)
    for w, r in a.get("sybil_flood", {}).items():
        if r.get("accepted"):
            flood = recs[int(w)]
            honest_subs = {s["peer"] for s in flood["submissions"]} & set(ids["honest"])
            assert honest_subs & set(flood["sampled"]), flood["sampled"]
            kept = set(flood["sampled"]) | set(flood["gather_next"] or []) | set(recs[int(w) + 1]["gather"])
            assert honest_subs <= kept, (honest_subs, kept)
    _assert_no_attacker_influence(net)
