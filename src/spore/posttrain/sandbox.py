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
    targeting). Without strace the judge says so and relies on static checks;
  - read isolation (`--isolate`): a private mount namespace where mountns.py
    applies isolation.mount_plan (the run folder, its siblings and the forbidden
    checkpoints hidden, the rest read-only, work/ writable) and drops every
    capability before it execs the agent.

The harness must not die and leave the agent running. While the agent runs,
SIGTERM, SIGINT and SIGHUP to the harness first kill the agent's group and
sweep its descendants, then act as they would have. SIGKILL cannot be caught:
the direct child gets PR_SET_PDEATHSIG=SIGKILL, which reaches the agent's first
process at most, and only strace under strace without --isolate (see
docs/posttrain.md, "Time limit and isolation").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spore.posttrain.isolation import Step, mount_plan

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
HARNESS_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MOUNTNS = Path(__file__).resolve().with_name("mountns.py")
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


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """Loaded once, in the harness: a forked child must not dlopen."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    return libc is not None and hasattr(libc, "prctl") and libc.prctl(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _unshare(flag: str) -> str:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError(f"{flag} needs util-linux's `unshare`, which is not installed")
    return unshare


def network_wrapper() -> list[str]:
    """The prefix that runs a command without network, or an error saying why not."""
    unshare = _unshare("--no-network")
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
            "-e", f"trace={TRACED_SYSCALLS}", "-o", str(log.resolve())]  # strace starts in work/


def isolation_wrapper(plan: list[Step], no_network: bool = False) -> list[str]:
    """The prefix that runs a command in a private mount namespace (and a network
    namespace with `no_network`) after mountns.py applied `plan` there."""
    flags = "-m" + ("n" if no_network else "") + ("" if os.geteuid() == 0 else "r")
    steps = json.dumps([[s.action, s.path] for s in plan])
    return [_unshare("--isolate"), flags, "--", sys.executable, "-I", "-S", str(MOUNTNS), steps]


def isolation_probe(no_network: bool = False) -> None:
    """A rehearsal of --isolate on a scratch run folder; an error saying why it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp).resolve() / "runs" / "run"
        (run / "work").mkdir(parents=True)
        (run / "secrets").mkdir()
        (run / "secrets" / "secret.json").write_text("{}")
        check = "test ! -e ../secrets/secret.json && touch seen-work-only"
        probe = subprocess.run(isolation_wrapper(mount_plan(str(run)), no_network)
                               + ["sh", "-c", check], cwd=run / "work",
                               capture_output=True, text=True)
        if probe.returncode != 0 or not (run / "work" / "seen-work-only").exists():
            raise RuntimeError(f"--isolate: this machine refuses the mount namespace "
                               f"({probe.stderr.strip() or 'the rehearsal run failed'})")


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
    mounts: list[Step] | None = None,
) -> Outcome:
    """Run `argv` in `cwd` until it exits or `time_limit` passes; then clear up everything.
    With `mounts` (isolation.mount_plan) the agent runs in a private mount namespace."""
    become_subreaper()
    strace = (strace_wrapper(trace_log) or []) if trace_log is not None else []
    if mounts is not None:
        # strace goes outside: it writes its log into the run folder, which the
        # namespace hides. It sees the setup too: unshare's and Python's start-up reads
        # (system and Python folders), never a hidden path (mount(2) is not traced).
        command = strace + isolation_wrapper(mounts, no_network) + list(argv)
    else:
        command = (network_wrapper() if no_network else []) + strace + list(argv)
    harness = os.getpid()

    def in_child() -> None:  # runs in the child, before exec
        # The direct child (strace, unshare or the agent itself) dies with the harness.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != harness:
            os._exit(126)  # the harness died before the signal was armed
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    before = set(descendants(os.getpid()))  # the caller's own children are not the agent's
    t0 = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=in_child)
        outcome = Outcome(exit_code=None, timed_out=False, wall_s=0.0, command=command)
        with _dies_with_the_harness(proc.pid, before):
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


@contextlib.contextmanager
def _dies_with_the_harness(pgid: int, before: set[int]) -> Iterator[None]:
    """While the agent runs, SIGTERM/SIGINT/SIGHUP to the harness kill the agent's group
    and sweep its descendants first, then do what they did before (a handler, or the
    default: the harness dies of the signal). A signal the harness ignores stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; PR_SET_PDEATHSIG still applies
        return
    previous = {s: signal.getsignal(s) for s in HARNESS_SIGNALS}
    previous = {s: h for s, h in previous.items() if h not in (signal.SIG_IGN, None)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    def on_signal(signum: int, frame) -> None:
        _signal_group(pgid, signal.SIGKILL)
        sweep_descendants(exclude=before)
        restore()
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)  # e.g. SIGINT's KeyboardInterrupt
        else:
            os.kill(os.getpid(), signum)  # SIG_DFL: die of it, as without the agent

    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        restore()


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
