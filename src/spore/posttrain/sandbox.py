"""Running an untrusted agent command: time limit, isolation, and nothing left behind.

The agent gets its own session and process group. At the limit the group
gets SIGTERM, then SIGKILL after a grace period. A process that escaped the
group (setsid, double fork) is still caught: the harness makes itself a
*child subreaper* (Linux prctl PR_SET_CHILD_SUBREAPER), so every orphaned
descendant is re-parented to it and swept when the agent ends, whether the
agent ran out of time or exited early leaving children behind.

Isolation, all optional:
  - no network: the command runs in a fresh network namespace (`unshare -n`,
    or `unshare -rn` for an unprivileged user), where not even loopback is up;
  - a memory cap: RLIMIT_AS, set in the child before exec;
  - a syscall trace: `strace -f -y` of open/openat/connect/execve/chdir,
    written outside the work folder, read by the judge (forbidden resources,
    targeting). Without strace the judge says so and relies on static checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
TRACED_SYSCALLS = "open,openat,connect,execve,chdir"


@dataclass
class Outcome:
    exit_code: int | None  # None: killed by the harness
    timed_out: bool
    wall_s: float
    term_sent: bool = False
    kill_sent: bool = False
    swept: list[int] = field(default_factory=list)  # escaped descendants killed afterwards
    survivors: list[int] = field(default_factory=list)  # must stay empty
    command: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def network_wrapper() -> list[str]:
    """The prefix that runs a command without network, or an error saying why not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("--no-network needs util-linux's `unshare`, which is not installed")
    flags = "-n" if os.geteuid() == 0 else "-rn"
    probe = subprocess.run([unshare, flags, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError(f"--no-network: this machine refuses network namespaces "
                           f"({probe.stderr.strip() or 'unshare failed'})")
    return [unshare, flags, "--"]


def strace_wrapper(log: Path) -> list[str] | None:
    strace = shutil.which("strace")
    if strace is None:
        return None
    return [strace, "-f", "-qq", "-y", "--seccomp-bpf", "-s", "256",
            "-e", f"trace={TRACED_SYSCALLS}", "-o", str(log)]


def run_agent(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    time_limit: float,
    grace: float,
    stdout: Path,
    stderr: Path,
    no_network: bool = False,
    memory_bytes: int | None = None,
    trace_log: Path | None = None,
) -> Outcome:
    """Run `argv` in `cwd` until it exits or `time_limit` passes; then clear up everything."""
    become_subreaper()
    prefix: list[str] = []
    if no_network:
        prefix += network_wrapper()
    if trace_log is not None:
        prefix += strace_wrapper(trace_log) or []
    command = prefix + list(argv)

    def limit_memory() -> None:  # runs in the child, before exec
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    before = set(descendants(os.getpid()))  # the caller's own children are not the agent's
    t0 = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=limit_memory)
        outcome = Outcome(exit_code=None, timed_out=False, wall_s=0.0, command=command)
        try:
            outcome.exit_code = proc.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
            outcome.term_sent = True
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                outcome.kill_sent = True
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            outcome.exit_code = None if proc.returncode < 0 else proc.returncode
        outcome.wall_s = round(time.monotonic() - t0, 3)
        # Whatever the agent left running goes too: its group first, then any
        # descendant that escaped the group and was re-parented to us.
        _signal_group(proc.pid, signal.SIGKILL)
        outcome.swept = sweep_descendants(exclude=before)
        outcome.survivors = [p for p in descendants(os.getpid())
                             if p not in before and _alive(p)]
    return outcome


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    out[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, IndexError, ValueError):
                continue
    return out


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def sweep_descendants(exclude: set[int] = frozenset(), rounds: int = 20) -> list[int]:
    """SIGKILL every descendant of this process not in `exclude`; the pids killed."""
    killed: list[int] = []
    for _ in range(rounds):
        live = [p for p in descendants(os.getpid()) if p not in exclude and _alive(p)]
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        _reap(live)
        if not live:
            break
        time.sleep(0.05)
    return sorted(set(killed))


def _reap(pids: list[int]) -> None:
    """Collect the zombies we killed (only those: other children belong to the caller)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.waitpid(pid, os.WNOHANG)
