"""`spore swarm watch` and `spore swarm report --html`, in a real browser on a real run.

A tiny network runs while `spore swarm watch` serves its folder, started
before the run exists (as the README tells a newcomer to do), and headless
Chromium keeps the page open throughout. Then:

- the live page went from "waiting" to "finished", showing each window as it landed;
- every number it shows equals summary.json (written by the launcher, which
  knows more than an outsider) and the ledger (`verify_ledger`);
- `report --html` is one file that loads from disk with no request anywhere else
  and shows the same numbers;
- a window record written into a copy of the store appears on an open page.

No page may log a console error. Screenshots go to tests/artifacts/ (or
$SPORE_ARTIFACTS). Before the browser, a table of cases states the view's rules
(spore.swarm.view) and an adversary's objects show the reader trusts only what
their owners signed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spore.swarm.ledger import verify_ledger
from spore.swarm.storeserver import die_with_parent
from spore.swarm.view import LedgerState, StoreSnapshot, run_view
from spore.swarm.watch import RunReader

from ..browser import Chromium, artifacts_dir

WINDOWS = 4
RUN = ["--preset", "tiny", "--peers", "2", "--windows", str(WINDOWS), "--window-seconds", "8"]

# What the page shows, read as a person reads it: the text of each element.
READ_PAGE = """(() => {
  const text = (id) => document.getElementById(id).textContent;
  const cells = (tr) => Object.fromEntries([...tr.cells].map((td) => [td.dataset.col, td.textContent]));
  return {
    state: text("state"), run_id: text("run-id"),
    loss_initial: text("loss-initial"), loss_latest: text("loss-latest"),
    wire: text("wire-median"), dense: text("dense-bytes"), compression: text("compression"),
    busy: text("busy-median"), no_update: text("no-update-windows"),
    theta_agree: text("theta-agree"), theta_reports: text("theta-reports"),
    ledger: text("ledger-state"), ledger_ok: document.getElementById("ledger-state").dataset.ok,
    ledger_same: (document.getElementById("ledger-same") || {}).textContent,
    windows: [...document.querySelectorAll("#windows tbody tr")].map((tr) =>
      ({...cells(tr), window: Number(tr.dataset.window), recorded: tr.dataset.recorded === "true"})),
    peers_window: document.getElementById("peers").dataset.window,
    peers: [...document.querySelectorAll("#peers tbody tr")].map((tr) => ({...cells(tr), peer: tr.dataset.peer})),
    loss_points: document.querySelectorAll("#loss-chart circle").length,
  };
})()"""

SAMPLE = """({state: document.getElementById("state").textContent,
  recorded: document.querySelectorAll('#windows tr[data-recorded="true"]').length})"""


def spore(*args: object) -> list[str]:
    return [sys.executable, "-m", "spore", *map(str, args)]


def dies_with_us() -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM when this test process dies, even by SIGKILL."""
    return functools.partial(die_with_parent, os.getpid())


def start_watch(target: Path) -> tuple[subprocess.Popen[str], str]:
    """`spore swarm watch TARGET --port 0` and the URL it prints."""
    proc = subprocess.Popen(spore("swarm", "watch", target, "--port", "0"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=dies_with_us())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"spore swarm watch printed {line!r}{proc.stdout.read()}")
    return proc, m[0]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def shown_bytes(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    with Chromium(tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.fixture(scope="module")
def live(browser: Chromium, tmp_path_factory: pytest.TempPathFactory):
    """A real run, watched from before it starts until it ends."""
    run = tmp_path_factory.mktemp("watch") / "run"
    watch, url = start_watch(run)
    page = browser.page()
    page.goto(url)
    page.wait_for("Number(document.body.dataset.polls || 0) >= 1", what="the first poll")
    timeline = [page.eval(SAMPLE)]
    log = run.parent / "run.log"
    with open(log, "w") as out:
        net = subprocess.Popen(spore("swarm", "run", *RUN, "--out", run), stdout=out, stderr=subprocess.STDOUT,
                               preexec_fn=dies_with_us())
        try:
            while net.poll() is None:
                timeline.append(page.eval(SAMPLE))
                browser.pump(1.0)
            page.wait_for("document.getElementById('state').textContent === 'finished'", timeout=30,
                          what="the page to show the run finished")
            timeline.append(page.eval(SAMPLE))
            assert (run / "summary.json").is_file(), log.read_text()[-3000:]
            yield {"run": run, "page": page, "timeline": timeline}
        finally:
            if net.poll() is None:
                net.kill()
                net.wait()
            stop(watch)


def check_numbers(shown: dict, run: Path) -> None:
    """What the page shows equals summary.json and the ledger."""
    summary = json.loads((run / "summary.json").read_text())
    assert shown["run_id"] == summary["run_id"]
    assert shown["loss_initial"] == f"{summary['initial_eval_loss']:.4f}"
    assert shown["loss_latest"] == f"{summary['final_eval_loss']:.4f}"
    assert shown["wire"] == shown_bytes(summary["wire_bytes_per_peer_window"])
    assert shown["dense"] == str(summary["dense_fp32_bytes"])
    assert shown["compression"] == f"{summary['compression_ratio']:.1f}"
    assert shown["busy"] == f"{summary['validation_seconds_per_window']:.2f}"
    # Every peer here is honest, so "no update applied" is summary.json's "no honest update applied".
    assert shown["no_update"] == (", ".join(map(str, summary["windows_without_training"])) or "none")
    assert shown["theta_reports"] == str(summary["theta_reports"])
    assert shown["theta_agree"] == str(summary["theta_reports"] - len(summary["theta_mismatches"]))

    rows = {r["window"]: r for r in shown["windows"]}
    assert sorted(rows) == list(range(summary["windows"]))
    for pw in summary["per_window"]:
        row = rows[pw["window"]]
        assert row["recorded"]
        assert row["eval-loss"] == f"{pw['eval_loss']:.4f}", pw["window"]
        assert row["accepted"] == str(pw["submissions"]), pw["window"]
        assert row["rejected"].split(":")[0] == str(len(pw["rejected"])), pw["window"]

    assert shown["peers_window"] == str(summary["windows"] - 1)  # the latest window, as summary's ranking
    peers = {p["peer"]: p for p in shown["peers"]}
    for r in summary["ranking"]:
        assert peers[r["id"]]["rating"] == f"{r['final_score']:.3f}", r["name"]
        assert peers[r["id"]]["weight"] == f"{r['weight']:.3f}", r["name"]

    check = verify_ledger(run / "ledger.sqlite")
    assert check.ok and shown["ledger_ok"] == "true"
    assert shown["ledger"] == f"verified: {check.records} records"
    assert shown["ledger_same"].startswith(f"{summary['windows']} window records identical")


# --- the view and the reader, without a browser -----------------------------------------

MANIFEST = {"run_id": "r", "preset": "tiny", "windows": 3, "window_seconds": 10.0, "t0": 1000.0,
            "warmup_windows": 2, "gather_size": 15, "aggregation": "all", "extra": {"initial_eval_loss": 5.0}}
A, B = "a" * 64, "b" * 64


def record(w: int, **over) -> dict:
    body = {"window": w, "eval_loss": 4.0 - w, "submissions": [{"peer": A, "bytes": 100}], "rejected": [],
            "aggregated": [A], "sampled": [A], "scores": {A: {"outcome": 1.0}}, "ratings": {A: {"final": 1.0}},
            "weights": {A: 1.0}, "gather": [A], "gather_next": [A], "measure_seconds": 2.0, "theta": f"t{w + 1}"}
    return body | over


# (name, snapshot, ledger windows, what the view must say)
VIEW_CASES = [
    ("before run.json: waiting", StoreSnapshot(), None, lambda v: v["state"] == "waiting"),
    ("a window with nothing aggregated is counted as such",
     StoreSnapshot(manifest=MANIFEST, records={0: record(0), 1: record(1, aggregated=[])}), None,
     lambda v: v["totals"]["windows_without_update"] == [1] and v["state"] == "finishing"),
    ("a rejection the validator could not pin on a peer still shows, by key",
     StoreSnapshot(manifest=MANIFEST, records={0: record(0, rejected=[
         {"peer": "", "key": "updates/00000000/X.upd", "reason": "bad-key", "detail": "<no id>"}])}), None,
     lambda v: any(p.get("key") == "updates/00000000/X.upd" and p["rejected"]["reason"] == "bad-key"
                   for p in v["windows"][0]["peers"])),
    ("an open window shows who uploaded, from the listing",
     StoreSnapshot(manifest=MANIFEST, records={0: record(0)}, uploads={1: {B: 321}}, gathers={1: {"peers": [A]}}), None,
     lambda v: {p["peer"]: (p["submitted"], p["bytes"], p["in_gather"]) for p in v["windows"][1]["peers"]}
     == {B: (True, 321, False), A: (False, None, True)}),
    ("a peer's status with another theta than the record's is a disagreement",
     StoreSnapshot(manifest=MANIFEST, theta0="t0", records={0: record(0)},
                   statuses={0: {A: {"theta": "t0"}}, 1: {A: {"theta": "t1"}, B: {"theta": "forked"}}}), None,
     lambda v: (v["totals"]["theta_reports"], v["totals"]["theta_agreeing"]) == (3, 2)),
    ("a ledger record that differs from the store's is named",
     StoreSnapshot(manifest=MANIFEST, validator=A, records={0: record(0), 1: record(1)}),
     {0: record(0), 1: record(1, eval_loss=0.1)},
     lambda v: v["ledger"]["windows_same"] == [0] and v["ledger"]["windows_differ"] == [1]),
]


@pytest.mark.parametrize(("case", "snap", "ledger_windows", "says"), VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_view(case, snap, ledger_windows, says):
    ledger = None if ledger_windows is None else LedgerState("l", True, 3, None, "", A, ledger_windows)
    view = run_view(snap, ledger, now=1000.0 + 10 * 3 + 1, source={"store": "s", "ledger": None})
    assert says(view), view


def test_reader_shows_only_objects_signed_by_their_owner(tmp_path: Path):
    """A record signed by someone else, or a status signed by another peer, is listed as a problem, never shown."""
    from spore.swarm.identity import Identity
    from spore.swarm.protocol import sign_json
    from spore.swarm.store import open_store

    validator, impostor, peer = Identity.generate(), Identity.generate(), Identity.generate()
    store = open_store(str(tmp_path / "store"))
    store.put("run.json", sign_json(MANIFEST | {"validator": validator.hex}, validator))
    store.put("windows/00000000.json", sign_json(record(0), validator))
    store.put("windows/00000001.json", sign_json(record(1), impostor))
    store.put("windows/00000002.json", sign_json(record(0), validator))  # window 0's record replayed
    store.put(f"status/00000000/{peer.hex}.json", sign_json({"peer": peer.hex, "window": 0, "theta": "x"}, peer))
    store.put(f"status/00000001/{peer.hex}.json", sign_json({"peer": peer.hex, "window": 1, "theta": "x"}, impostor))
    reader = RunReader(str(tmp_path / "store"))
    snap = reader.snapshot()
    assert sorted(snap.records) == [0]
    assert list(snap.statuses) == [0]
    assert any(p.startswith("windows/00000001.json") for p in snap.problems)
    assert any(p.startswith(f"status/00000001/{peer.hex}.json") for p in snap.problems)
    pinned = RunReader(str(tmp_path / "store"), validator=impostor.hex).view()
    assert pinned["state"] == "waiting" and any("run.json" in p for p in pinned["problems"])


# --- in a real browser, on a real run ------------------------------------------------------

@pytest.mark.slow
def test_live_page_follows_the_run_from_waiting_to_finished(live):
    timeline, page = live["timeline"], live["page"]
    states = [t["state"] for t in timeline]
    assert states[0] == "waiting" and states[-1] == "finished", states
    assert "running" in states, states
    recorded = [t["recorded"] for t in timeline]
    assert recorded == sorted(recorded), recorded  # windows only ever land
    assert recorded[0] == 0 and recorded[-1] == WINDOWS
    assert len(set(recorded)) >= 3, f"the page showed too few windows land one by one: {recorded}"
    page.screenshot(artifacts_dir() / "swarm-watch-live.png")
    assert page.errors() == []


@pytest.mark.slow
def test_live_page_numbers_equal_summary_and_ledger(live):
    check_numbers(live["page"].eval(READ_PAGE), live["run"])
    assert live["page"].errors() == []


@pytest.mark.slow
def test_report_is_one_file_that_needs_no_network(live, browser: Chromium, tmp_path: Path):
    out = tmp_path / "report.html"
    subprocess.run(spore("swarm", "report", live["run"], "--html", out), check=True, capture_output=True)
    html = out.read_text()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//)""", html, re.I)
    page = browser.page()
    page.goto(out.as_uri())
    page.wait_for("document.getElementById('state').textContent === 'finished'", timeout=10)
    check_numbers(page.eval(READ_PAGE), live["run"])
    assert page.requests() == [out.as_uri()], "the report fetched something besides itself"
    shutil.copy(page.screenshot(tmp_path / "report.png"), artifacts_dir() / "swarm-report.png")
    assert page.errors() == []


@pytest.mark.slow
def test_live_page_shows_a_window_record_as_it_lands(live, browser: Chromium, tmp_path: Path):
    """Deterministic: a copy of the finished run without its last record, then the record."""
    copy = tmp_path / "run"
    shutil.copytree(live["run"] / "store", copy / "store")
    shutil.copy(live["run"] / "ledger.sqlite", copy / "ledger.sqlite")
    last = copy / "store" / "windows" / f"{WINDOWS - 1:08d}.json"
    record = last.read_bytes()
    last.unlink()
    watch, url = start_watch(copy)
    try:
        page = browser.page()
        page.goto(url)
        page.wait_for(f"""document.querySelectorAll('#windows tr[data-recorded="true"]').length === {WINDOWS - 1}""",
                      what="the windows before the last")
        assert page.eval(READ_PAGE)["loss_points"] == WINDOWS  # the start and windows 0..W-2
        last.write_bytes(record)
        t0 = time.time()
        page.wait_for(f"""document.querySelectorAll('#windows tr[data-recorded="true"]').length === {WINDOWS}""",
                      timeout=20, what="the new window record to appear")
        shown = page.eval(READ_PAGE)
        summary = json.loads((live["run"] / "summary.json").read_text())
        new = next(r for r in shown["windows"] if r["window"] == WINDOWS - 1)
        assert new["eval-loss"] == f"{summary['per_window'][-1]['eval_loss']:.4f}"
        assert shown["loss_latest"] == f"{summary['final_eval_loss']:.4f}"
        assert shown["loss_points"] == WINDOWS + 1
        assert time.time() - t0 < 20
        assert page.errors() == []
    finally:
        stop(watch)
