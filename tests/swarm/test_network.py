"""Whole networks of real OS processes, started the way a user starts them (the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def spore(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spore", *args], capture_output=True, text=True, timeout=timeout
    )


def run_swarm(out: Path, *extra: str) -> dict:
    r = spore("swarm", "run", "--preset", "tiny", "--out", str(out), *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((out / "summary.json").read_text())


def statuses(out: Path, peer_index: int) -> list[int]:
    """Windows for which a peer published a signed status (it held theta then)."""
    from spore.swarm.identity import Identity

    pid = Identity.load(out / "keys" / f"peer-{peer_index}.key").hex
    return sorted(int(p.parent.name) for p in (out / "store" / "status").glob(f"*/{pid}.json"))


def test_readme_run_three_peers_four_windows(tmp_path):
    out = tmp_path / "run"
    s = run_swarm(out, "--peers", "3", "--windows", "4")
    assert s["peers"] == 3 and s["windows"] == 4
    assert s["final_eval_loss"] < s["initial_eval_loss"] - 0.5  # it learns
    losses = [w["eval_loss"] for w in s["per_window"]]
    assert losses == sorted(losses, reverse=True)
    assert s["compression_ratio"] >= 140
    assert s["wire_bytes_per_peer_window"] * s["compression_ratio"] == pytest.approx(s["dense_fp32_bytes"])
    assert s["theta_consistent"] and s["theta_reports"] == 3 * 5  # 3 peers x (4 windows + final)
    assert all(w["submissions"] == 3 and not w["rejected"] for w in s["per_window"])
    for png in ("eval_loss.png", "bytes.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The final model is an ordinary Hugging Face folder.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "final_model")
    tok = AutoTokenizer.from_pretrained(out / "final_model")
    assert model.config.vocab_size == 320 and tok("x").input_ids == [ord("x")]


def test_late_join_and_crash_recovery(tmp_path):
    """Peer 2 joins at window 2; peer 1 is SIGKILLed at window 2 and restarted at 3."""
    out = tmp_path / "run"
    s = run_swarm(out, "--peers", "3", "--windows", "6", "--late", "2@2", "--crash", "1@2")
    assert s["events"]["peer-1"] == ["killed at window 2", "restarted at window 3"]
    assert s["theta_consistent"]  # every status every peer published matches the validator's theta
    late, crashed = statuses(out, 2), statuses(out, 1)
    assert late and min(late) >= 2 and max(late) == 6  # caught up, then followed to the end
    assert 6 in crashed and any(w >= 3 for w in crashed)
    # The others were not stopped: every window got submissions.
    assert all(w["submissions"] >= 1 for w in s["per_window"])
    assert s["final_eval_loss"] < s["initial_eval_loss"]
    # The restarted peer resumed its error feedback from its work folder.
    assert "resumed error feedback" in (out / "logs" / "peer-1.log").read_text()


def test_network_over_s3(tmp_path, s3_url):
    out = tmp_path / "run"
    s = run_swarm(out, "--peers", "2", "--windows", "3", "--store", s3_url)
    assert s["theta_consistent"] and s["theta_reports"] == 2 * 4
    assert all(w["submissions"] == 2 for w in s["per_window"])
    assert s["final_eval_loss"] < s["initial_eval_loss"]
    assert not (out / "store").exists()  # everything went through S3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--peers", "0"], "--peers: must be at least 1"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--window-seconds", "nan"], "--window-seconds: must be a positive number"),
        (["--late", "x"], "is not PEER@WINDOW"),
        (["--late", "5@2"], "there are only 3 peers"),
        (["--store", "ftp://x/y"], "unsupported store URL"),
        (["--adversary", "sneaky"], "unknown adversary 'sneaky'"),
    ],
)
def test_bad_flags_name_the_flag_and_the_fix(tmp_path, args, message):
    r = spore("swarm", "run", "--preset", "tiny", "--out", str(tmp_path / "o"), *args, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr


def test_a_used_store_is_not_overwritten(tmp_path):
    out = tmp_path / "o"
    (out / "store").mkdir(parents=True)
    (out / "store" / "run.json").write_text("{}")
    r = spore("swarm", "run", "--preset", "tiny", "--out", str(out), timeout=60)
    assert r.returncode == 2 and "already holds a run" in r.stderr
    assert (out / "store" / "run.json").read_text() == "{}"


ADVERSARIES = ["free-rider", "copier", "noise", "poisoner", "stale", "late", "forger", "malformed", "zero-then-random"]


def test_every_kind_of_cheater_loses(tmp_path):
    """4 honest peers and one of every adversary, against the same 4 honest peers alone."""
    # 13 processes share 2 cores: windows long enough that honest peers never miss one.
    common = ["--peers", "4", "--windows", "6", "--window-seconds", "10"]
    attacked = run_swarm(tmp_path / "attack", *common, *[a for k in ADVERSARIES for a in ("--adversary", k)])
    alone = run_swarm(tmp_path / "honest", *common)

    assert attacked["adversaries_in_gather_after_warmup"] == 0
    ranking = attacked["ranking"]
    assert {r["kind"] for r in ranking[:4]} == {"honest"}  # honest peers hold the top ranks
    for r in ranking:
        if r["kind"] != "honest":
            assert r["weight"] == 0.0 and r["final_score"] == 0.0, r
    assert sum(r["weight"] for r in ranking if r["kind"] == "honest") == pytest.approx(1.0)
    assert attacked["final_eval_loss"] <= 1.05 * alone["final_eval_loss"]

    # Every rejection is in the ledger with its reason, against the right peer.
    ids = {r["kind"]: r["id"] for r in ranking if r["kind"] != "honest"}
    reasons: dict[str, set[str]] = {}
    for peer, reason in attacked["rejections"]:
        reasons.setdefault(peer, set()).add(reason)
    assert reasons[ids["late"]] == {"late"}
    assert reasons[ids["forger"]] == {"bad-signature"}
    assert reasons[ids["malformed"]] >= {"index-out-of-range", "non-finite"}
    assert "absurd-scale" in reasons[ids["poisoner"]]
    show = spore("ledger", "show", str(tmp_path / "attack")).stdout
    assert "late: stored" in show and "COPY of" in show
    assert spore("ledger", "verify", str(tmp_path / "attack")).returncode == 0
    assert (tmp_path / "attack" / "ranks.png").exists()


def test_validator_restart_keeps_the_ledger_whole(tmp_path):
    out = tmp_path / "run"
    s = run_swarm(out, "--peers", "3", "--windows", "6", "--restart-validator", "3")
    assert s["events"]["validator"][0].startswith("killed at window")
    assert s["theta_consistent"]
    v = spore("ledger", "verify", str(out))
    assert v.returncode == 0 and "7 records" in v.stdout  # genesis + 6 windows, each once
    # Tampering with one byte of one stored record is caught and named.
    import sqlite3

    db = sqlite3.connect(out / "ledger.sqlite")
    body = db.execute("SELECT body FROM records WHERE seq = 2").fetchone()[0]
    db.execute("UPDATE records SET body = ? WHERE seq = 2", (body.replace('"window":1', '"window":7', 1),))
    db.commit()
    bad = spore("ledger", "verify", str(out))
    assert bad.returncode == 1 and "record #2" in bad.stdout
