"""The time limit and isolation, through `spore posttrain run` with real agent processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spore.posttrain.isolation import Step, mount_plan

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
    """Unsandboxed (the pids it writes are the host's only there); the sandboxed case is
    test_posttrain_sandbox_escapes.py's daemon test."""
    agent = _script(tmp_path, "never_exits.py", NEVER_EXITS)
    run = tmp_path / "run"
    spore("posttrain", "run", "--agent", f"{sys.executable} {agent}", "--base", base,
          "--task", "pyexpr", "--time-limit", "4s", "--grace", "1s", "--out", run,
          "--test-size", "10", "--no-trace", "--no-isolate")
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
    (tmp_path / "agents").mkdir()  # outside the runs' parent, which the sandbox hides
    agent = _script(tmp_path / "agents", "probe.py", PROBE)
    srv, port = _listen()
    try:
        control, isolated = tmp_path / "runs" / "control", tmp_path / "runs" / "isolated"
        spore("posttrain", "run", "--agent", f"{sys.executable} {agent} {port}", "--base", base,
              "--task", "arithmetic", "--time-limit", "20s", "--out", control, "--test-size", "5",
              "--network")
        spore("posttrain", "run", "--agent", f"{sys.executable} {agent} {port}", "--base", base,
              "--task", "arithmetic", "--time-limit", "20s", "--out", isolated, "--test-size", "5",
              "--memory-limit", "3G")  # no network: the sandbox's default
    finally:
        srv.close()
    seen = json.loads((control / "work" / "probe.json").read_text())
    assert seen["net"] == "connected"  # the probe can tell; so its failure below means isolation
    probe = json.loads((isolated / "work" / "probe.json").read_text())
    assert probe["net"] != "connected"
    outcome = json.loads((isolated / "trace" / "outcome.json").read_text())
    if outcome["memory_limit"] == "RLIMIT_AS":  # no memory controller for the harness's cgroup
        assert probe["rlimit_as"] == 3 << 30
    else:
        assert outcome["memory_limit"] == "cgroup memory.max"
    assert os.getpid()  # the harness itself was never capped


# --- --isolate: the mount plan (pure), then real isolated runs -------------------------


def seen(steps: list[Step], path: str) -> bool:
    """What the agent sees at `path` after the plan: the last hide/show/scratch step on
    the path or an ancestor decides (a step overrides its ancestors' steps)."""
    decisive = [s for s in steps if s.action in ("hide", "show", "scratch")
                and (path == s.path or path.startswith(s.path.rstrip("/") + "/"))]
    return not decisive or decisive[-1].action != "hide"


PLAN_CASES = [
    # (name, run folder, hidden, keep, what the agent sees, what it does not)
    ("a run among others: siblings, secrets and checkpoints hidden",
     "/data/runs/r1", ["/data/models/instruct"], ["/opt/venv"],
     ["/data/runs/r1/work/x", "/opt/venv/lib", "/usr/lib", "/data/other"],
     ["/data/runs/r1/secrets/secret.json", "/data/runs/r1/run.json", "/data/runs/r2/secrets",
      "/data/models/instruct/model.safetensors"]),
    ("the parent is /: only the run folder itself is hidden",
     "/r1", [], [], ["/r1/work", "/usr", "/home"], ["/r1/secrets", "/r1/trace"]),
    ("the parent is a system folder: left alone",
     "/usr/local/runs", [], [], ["/usr/local/runs/work", "/usr/local/lib"],
     ["/usr/local/runs/secrets"]),
    ("what the agent needs under the hidden parent is shown again",
     "/home/u/r1", [], ["/home/u/venv", "/home/u/agents/spy.py"],
     ["/home/u/venv/bin/python", "/home/u/agents/spy.py", "/home/u/r1/work"],
     ["/home/u/r2", "/home/u/agents/other.py", "/home/u/r1/secrets"]),
    ("nothing under the run folder or a checkpoint is ever shown again",
     "/data/runs/r1", ["/data/models/instruct"],
     ["/data/runs/r1/secrets", "/data/runs/r1", "/data/models/instruct/tokenizer.json"],
     ["/data/runs/r1/work"],
     ["/data/runs/r1/secrets/secret.json", "/data/models/instruct/tokenizer.json"]),
    ("a checkpoint inside a kept folder is hidden after the folder is shown",
     "/home/u/runs/r1", ["/home/u/src/instruct"], ["/home/u/src"],
     ["/home/u/src/spore/x.py"], ["/home/u/src/instruct/config.json"]),
    ("a parent the agent needs (named as kept) is not hidden",
     "/home/u/r1", [], ["/home/u"], ["/home/u/notes", "/home/u/r1/work"], ["/home/u/r1/secrets"]),
]


@pytest.mark.parametrize(("name", "run_dir", "hidden", "keep", "visible", "invisible"),
                         PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_the_mount_plan_hides_the_runs_material_and_keeps_what_the_agent_needs(
        name, run_dir, hidden, keep, visible, invisible):
    steps = mount_plan(run_dir, hidden, keep)
    assert [p for p in visible if not seen(steps, p)] == []
    assert [p for p in invisible if seen(steps, p)] == []
    # everything read-only except work/ and the private scratch folders, in that order
    assert steps[-3:] == [Step("readonly", "/"), Step("writable", f"{run_dir}/work"),
                          Step("writable", "/dev/shm")]


def test_the_mount_plan_goes_shallow_to_deep_and_leaves_out_steps_that_change_nothing():
    steps = mount_plan("/data/runs/r1", ["/data/models/instruct", "/data/runs/r1/secrets"],
                       ["/usr/lib/python3", "/data/runs/r2/venv"], read_only=False)
    assert steps == [
        Step("hide", "/data/runs"),  # covers r1, r1/secrets and the sibling runs
        Step("scratch", "/dev/shm"),
        Step("hide", "/data/models/instruct"),
        Step("show", "/data/runs/r1/work"),
        Step("show", "/data/runs/r2/venv"),
    ]  # /usr/lib/python3 is visible anyway: no step


SPY = r"""
import ctypes, json, os, sys
run, sibling, forbidden, mode, shm = sys.argv[1:6]
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return type(e).__name__
def read(path):
    return attempt(lambda: open(path).read())
def write(path):
    return attempt(lambda: open(path, "w").write("x"))
def umount(path):
    if ctypes.CDLL(None, use_errno=True).umount2(path.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), "umount")
os.makedirs("final_model", exist_ok=True)
seen = {
    "secret": read("../secrets/secret.json"),
    "secret by absolute path": read(os.path.join(run, "secrets", "secret.json")),
    "run.json": read("../run.json"),
    "sibling secret": read(os.path.join(sibling, "secrets", "secret.json")),
    "forbidden checkpoint": read(os.path.join(forbidden, "config.json")),
    "python": read(os.__file__),
    "write work/final_model": write("final_model/config.json"),
    "write next to the agent": write(os.path.join(os.path.dirname(sys.argv[0]), "escape.txt")),
    "write shared memory": write(shm),
}
if mode == "isolated":  # never on the host's own mounts
    seen["unmount the run's parent"] = attempt(lambda: umount(os.path.dirname(run)))
json.dump(seen, open("seen.json", "w"), indent=1)
"""


def test_an_isolated_agent_sees_its_work_folder_and_python_but_no_hidden_material(base, tmp_path):
    agent = tmp_path / "agents" / "spy.py"
    agent.parent.mkdir()
    agent.write_text(SPY)
    sibling = tmp_path / "runs" / "sibling"  # another run's folder, with its own secret
    (sibling / "secrets").mkdir(parents=True)
    (sibling / "secrets" / "secret.json").write_text("{}")
    forbidden = tmp_path / "registry" / "instruct"
    shutil.copytree(base, forbidden)
    looks, shm = {}, {}
    for name, extra in (("control", ["--no-isolate"]), ("isolated", [])):
        run = tmp_path / "runs" / name
        shm[name] = Path(f"/dev/shm/spore-spy-{os.getpid()}-{name}")
        spore("posttrain", "run", "--agent", f"{sys.executable} {agent} {run.resolve()} "
              f"{sibling.resolve()} {forbidden.resolve()} {name} {shm[name]}", "--base", base,
              "--task", "uppercase", "--time-limit", "20s", "--out", run, "--test-size", "5",
              "--forbidden", forbidden, "--no-trace", *extra)
        looks[name] = json.loads((run / "work" / "seen.json").read_text())
    on_host = {name: p.exists() for name, p in shm.items()}
    for p in shm.values():
        p.unlink(missing_ok=True)
    hidden = ["secret", "secret by absolute path", "run.json", "sibling secret",
              "forbidden checkpoint"]
    # the spy can tell: without the sandbox it reads and writes everything
    assert set(looks["control"].values()) == {"ok"}, looks["control"]
    assert on_host["control"]
    os.remove(agent.parent / "escape.txt")
    iso = looks["isolated"]
    assert {k: iso[k] for k in hidden} == dict.fromkeys(hidden, "FileNotFoundError")
    assert iso["python"] == "ok" and iso["write work/final_model"] == "ok"
    assert iso["write next to the agent"] == "OSError"  # EROFS: the rest is read-only
    assert not (tmp_path / "agents" / "escape.txt").exists()
    assert iso["write shared memory"] == "ok"  # a private /dev/shm ...
    assert not on_host["isolated"]  # ... that leaves nothing behind on the host
    assert iso["unmount the run's parent"] == "PermissionError"  # no capabilities left
    info = json.loads((tmp_path / "runs" / "isolated" / "run.json").read_text())
    assert info["isolate"] is True


def test_isolation_that_cannot_be_had_is_an_error_before_the_run_starts(base, tmp_path):
    run = tmp_path / "runs" / "r"
    env = os.environ | {"PATH": str(tmp_path)}  # a machine without bubblewrap
    proc = subprocess.run([sys.executable, "-m", "spore", "posttrain", "run", "--agent",
                           "builtin:honest-sft", "--base", str(base), "--task", "uppercase",
                           "--out", str(run)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "the sandbox needs bubblewrap" in proc.stderr
    assert "--no-isolate" in proc.stderr  # the way out, named
    assert not run.exists()


def test_the_honest_agent_runs_isolated_and_is_judged_clean(base, tmp_path):
    run = tmp_path / "runs" / "honest"
    spore("posttrain", "run", "--agent", "builtin:honest-sft", "--base", base, "--task",
          "uppercase", "--time-limit", "60s", "--out", run, "--test-size", "10")
    res = run_dir_result(run)
    assert res["agent_exit_code"] == 0 and res["final_usable"] is True
    spore("posttrain", "judge", run)
    verdict = json.loads((run / "judgement.json").read_text())
    assert verdict["traced"] and not verdict["flagged"], verdict["flagged_by"]


# --- the harness dies: the agent goes with it ----------------------------------------------


def _default_signals() -> None:
    """A harness as a terminal starts it: under `nohup` or `&` the test runner may ignore
    SIGHUP or SIGINT, and the harness would inherit that (and rightly keep ignoring it)."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def _harness(base: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """A real, unsandboxed `spore posttrain run` of NEVER_EXITS with a long limit, once the
    agent's processes (its own, a child in its group, an escaped grandchild) have all
    started. Unsandboxed: the pids it writes are the host's only there (the sandboxed
    harness killed outright: test_posttrain_sandbox_escapes.py)."""
    agent = _script(tmp_path, "never_exits.py", NEVER_EXITS)
    run = tmp_path / "runs" / "run"
    harness = subprocess.Popen(
        [sys.executable, "-m", "spore", "posttrain", "run", "--agent", f"{sys.executable} {agent}",
         "--base", str(base), "--task", "pyexpr", "--time-limit", "5m", "--out", str(run),
         "--test-size", "5", "--no-isolate", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_default_signals)
    work = run / "work"
    for _ in range(600):
        if (work / "pids").exists() and (work / "escaped.pid").exists():
            break
        time.sleep(0.1)
    else:
        harness.kill()
        raise AssertionError("the agent never started")
    time.sleep(0.2)  # both files are written whole before the agent loops
    return harness, work


def _agent_pids(work: Path) -> list[int]:
    pids = [int(p) for p in (work / "pids").read_text().split()]
    return pids + [int((work / "escaped.pid").read_text())]


SIGNALS = [  # (signal, how the harness ends: dies of it, or the CLI's 130 for Ctrl-C)
    (signal.SIGTERM, -signal.SIGTERM),
    (signal.SIGHUP, -signal.SIGHUP),
    (signal.SIGINT, 130),
]


@pytest.mark.parametrize(("sig", "exit_code"), SIGNALS, ids=[s.name for s, _ in SIGNALS])
def test_a_signalled_harness_takes_every_agent_process_with_it(base, tmp_path, sig, exit_code):
    harness, work = _harness(base, tmp_path)
    pids = _agent_pids(work)
    assert not any(_gone(p) for p in pids)
    harness.send_signal(sig)
    assert harness.wait(timeout=30) == exit_code
    assert [p for p in pids if not _gone(p)] == []


def test_a_harness_killed_outright_takes_the_agents_first_process_only(base, tmp_path):
    """Unsandboxed, SIGKILL cannot be caught: only PR_SET_PDEATHSIG acts, on the agent's
    first process. Its child and the escaped grandchild outlive the harness: the
    documented limit of --no-isolate."""
    harness, work = _harness(base, tmp_path, "--no-trace")
    first, *rest = _agent_pids(work)
    harness.kill()
    harness.wait(timeout=30)
    try:
        for _ in range(50):
            if _gone(first):
                break
            time.sleep(0.1)
        assert _gone(first)
        assert not any(_gone(p) for p in rest)  # if this fails, update the docs' limits
    finally:
        for p in rest:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
