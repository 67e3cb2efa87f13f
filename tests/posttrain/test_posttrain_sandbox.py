"""The time limit and isolation, through `spore posttrain run` with real agent processes."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

from .conftest import run_dir_result, spore

# Ignores SIGTERM; starts a child in its group and a grandchild that leaves the
# group (setsid) and is orphaned (double fork); records every pid; never exits.
NEVER_EXITS = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
child = subprocess.Popen([sys.executable, "-c", stubborn])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open("escaped.pid", "w").write(str(os.getpid()))
        time.sleep(1000)
    os._exit(0)
open("pids", "w").write(f"{os.getpid()} {child.pid}")
while True:
    time.sleep(0.1)
"""

PROBE = r"""
import json, resource, socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    net = "connected"
except OSError as e:
    net = type(e).__name__
json.dump({"net": net, "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0]}, open("probe.json", "w"))
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _script(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_an_agent_that_never_exits_is_killed_at_the_limit_with_nothing_left(base, tmp_path):
    agent = _script(tmp_path, "never_exits.py", NEVER_EXITS)
    run = tmp_path / "run"
    spore("posttrain", "run", "--agent", f"{sys.executable} {agent}", "--base", base,
          "--task", "pyexpr", "--time-limit", "4s", "--grace", "1s", "--out", run,
          "--test-size", "10", "--no-trace")
    outcome = json.loads((run / "trace" / "outcome.json").read_text())
    assert outcome["timed_out"] and outcome["term_sent"] and outcome["kill_sent"]
    assert 4 <= outcome["wall_s"] < 9
    pids = [int(p) for p in (run / "work" / "pids").read_text().split()]
    pids.append(int((run / "work" / "escaped.pid").read_text()))
    assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
    assert outcome["survivors"] == []
    # ... and the run is scored, not lost: no model means the base score.
    res = run_dir_result(run)
    assert res["final_usable"] is False and res["base_score"] is not None


def test_a_crashing_agent_is_scored_not_lost(base, tmp_path):
    run = tmp_path / "run"
    spore("posttrain", "run", "--agent", f"{sys.executable} -c 'raise SystemExit(3)'", "--base",
          base, "--task", "uppercase", "--time-limit", "30s", "--out", run, "--test-size", "10")
    res = run_dir_result(run)
    assert res["agent_exit_code"] == 3 and not res["timed_out"]
    assert res["final_usable"] is False and "no final_model" in res["final_error"]
    board = spore("posttrain", "score", run).stdout
    assert f"{res['base_score']:.3f}" in board


def _listen() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    threading.Thread(target=lambda: [srv.accept() for _ in range(4)], daemon=True).start()
    return srv, srv.getsockname()[1]


def test_no_network_and_memory_cap_apply_to_the_agent(base, tmp_path):
    agent = _script(tmp_path, "probe.py", PROBE)
    srv, port = _listen()
    try:
        control, isolated = tmp_path / "control", tmp_path / "isolated"
        spore("posttrain", "run", "--agent", f"{sys.executable} {agent} {port}", "--base", base,
              "--task", "arithmetic", "--time-limit", "20s", "--out", control, "--test-size", "5")
        spore("posttrain", "run", "--agent", f"{sys.executable} {agent} {port}", "--base", base,
              "--task", "arithmetic", "--time-limit", "20s", "--out", isolated, "--test-size", "5",
              "--no-network", "--memory-limit", "3G")
    finally:
        srv.close()
    seen = json.loads((control / "work" / "probe.json").read_text())
    assert seen["net"] == "connected"  # the probe can tell; so its failure below means isolation
    probe = json.loads((isolated / "work" / "probe.json").read_text())
    assert probe["net"] != "connected"
    assert probe["rlimit_as"] == 3 << 30
    assert os.getpid()  # the harness itself was never capped
