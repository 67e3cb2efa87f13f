"""Running an untrusted agent command: time limit, sandbox, and nothing left behind.

By default (harness `isolate=True`) the agent runs under bubblewrap in a cgroup
of its own:

    [strace -f ...] /bin/sh -c 'echo $$ > CGROUP/cgroup.procs; exec "$@"' bwrap ... -- AGENT

  - bubblewrap (isolation.bwrap_argv): an empty root that shows only the system
    folders, the Python installation and the agent's own program (read-only), work/
    (writable, its base_model/ read-only), a private /tmp; a new PID namespace (only
    the sandbox's processes in /proc), no capabilities, a new session, no network
    unless asked for, and `--die-with-parent`;
  - the cgroup (cgroup.py): the shell moves itself in before it execs bwrap, so every
    process of the run is in it and none can leave it. At the limit each of them gets
    SIGTERM, after the grace period the cgroup gets `cgroup.kill`; when the agent exits
    early, `cgroup.kill` at once. memory.max / cpu.max are set there where the kernel
    offers those controllers;
  - strace stays outside both: it writes its log into the run folder the sandbox
    hides, and the agent cannot see its pid to kill it. A tracer that ends before the
    agent did, or whose log lacks the first process's exit, is recorded
    (`Outcome.tracer`), so a trace with a hole is itself evidence.

Without isolation (`--no-isolate`), the older, weaker scheme: its own session and
process group, the harness as child subreaper (prctl PR_SET_CHILD_SUBREAPER) so an
orphaned descendant is re-parented to it and swept, `unshare -n` for no network,
RLIMIT_AS for memory.

The harness must not die and leave the agent running. While the agent runs,
SIGTERM, SIGINT and SIGHUP to the harness first kill every agent process, then act
as they would have. SIGKILL cannot be caught: the direct child gets
PR_SET_PDEATHSIG=SIGKILL; in the sandbox bwrap's `--die-with-parent` and the PID
namespace carry that to every process (docs/posttrain.md, "Time limit and isolation").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spore.posttrain.cgroup import CgroupError, RunCgroup
from spore.posttrain.isolation import (
    ACCELERATOR_DEVICES,
    BASE_MODEL,
    SYSTEM_DIRS,
    Step,
    bwrap_argv,
    mount_plan,
)
from spore.posttrain.resources import trace_complete

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
HARNESS_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Every call that can read, create a second name for, move, empty or signal something
# (issue #10: linkat/openat2/rename read the secret past a trace of open/openat alone).
TRACED_SYSCALLS = ("open,openat,openat2,creat,connect,execve,execveat,chdir,fchdir,"
                   "link,linkat,symlink,symlinkat,rename,renameat,renameat2,unlink,unlinkat,"
                   "truncate,ftruncate,mount,kill,tkill,tgkill,pidfd_send_signal,ptrace,"
                   "process_vm_readv,process_vm_writev,"
                   # who started whom: the sandbox's own setup is told apart by lineage
                   "clone,clone3,fork,vfork")
TRACER_WAIT_S = 10.0  # for strace to write its last lines once its tracees are gone


@dataclass
class Outcome:
    exit_code: int | None  # None: killed by the harness
    timed_out: bool
    wall_s: float
    term_sent: bool = False
    kill_sent: bool = False
    swept: list[int] = field(default_factory=list)  # processes killed after the agent ended
    survivors: list[int] = field(default_factory=list)  # must stay empty
    command: list[str] = field(default_factory=list)
    isolated: bool = False
    cgroup: str | None = None
    # strace: None without a trace; else whether it outlived every agent process and its
    # log records the first process's exit. `intact: false` is evidence of its own.
    tracer: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Sandbox:
    """What run_agent needs for an isolated run: the mount plan, the cgroup, the network."""
    plan: list[Step]
    cgroup: RunCgroup
    network: bool = False


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
    """--no-isolate --no-network: the prefix that runs a command without network."""
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
    # -q, not -qq: the "+++ exited with N +++" lines stay, and trace_complete needs them.
    # -I4: strace blocks every signal it can, so an agent that signals its own process
    # group (strace's too, without the sandbox) does not end the trace; SIGKILL still
    # does, and is then recorded as a trace with a hole.
    return [strace, "-I4", "-f", "-q", "-y", "--seccomp-bpf", "-s", "256", "-e", "signal=none",
            "-e", f"trace={TRACED_SYSCALLS}", "-o", str(log.resolve())]  # strace starts in work/


def bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise RuntimeError("the sandbox needs bubblewrap (`bwrap`), which is not installed: "
                           "`apt-get install bubblewrap` (scripts/setup does), or run with "
                           "--no-isolate to run the agent unsandboxed")
    return found


def system_view() -> dict[str, str | None]:
    """The system folders this machine has: path -> its symlink's target (merged /usr:
    /bin -> usr/bin), or None for a real folder."""
    return {d: (os.readlink(d) if os.path.islink(d) else None) for d in SYSTEM_DIRS
            if os.path.lexists(d)}


def sandbox_argv(box: Sandbox, cwd: Path) -> list[str]:
    devices = [d for d in ACCELERATOR_DEVICES if os.path.exists(d)]
    return bwrap_argv(bwrap(), box.plan, str(cwd), box.network, devices)


def make_cgroup(memory_bytes: int | None, cpus: float | None) -> RunCgroup:
    try:
        return RunCgroup.create(memory_bytes, cpus)
    except CgroupError as e:
        raise RuntimeError(f"the sandbox needs a writable cgroup v2 for the run ({e}); run as "
                           "root or with a delegated cgroup, or with --no-isolate") from None


def isolation_probe(network: bool = False) -> None:
    """A rehearsal of the sandbox on a scratch run folder: bwrap, the cgroup, the mounts;
    an error saying why it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp).resolve() / "runs" / "run"
        (run / "work" / BASE_MODEL).mkdir(parents=True)
        (run / "secrets").mkdir()
        (run / "secrets" / "secret.json").write_text("{}")
        group = make_cgroup(None, None)
        try:
            box = Sandbox(mount_plan(str(run), system=system_view()), group, network)
            check = "test ! -e ../secrets/secret.json && touch seen-work-only"
            probe = subprocess.run(group.join_argv(sandbox_argv(box, run / "work")
                                                   + ["sh", "-c", check]),
                                   cwd=run / "work", capture_output=True, text=True)
            group.kill_and_wait()
        finally:
            group.remove()
        if probe.returncode != 0 or not (run / "work" / "seen-work-only").exists():
            raise RuntimeError(f"the sandbox does not work on this machine "
                               f"({probe.stderr.strip() or 'the rehearsal run failed'}); "
                               "run with --no-isolate to run the agent unsandboxed")


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
    sandbox: Sandbox | None = None,
) -> Outcome:
    """Run `argv` in `cwd` until it exits or `time_limit` passes; then clear up everything.
    With `sandbox` the agent runs under bubblewrap in the sandbox's cgroup."""
    become_subreaper()
    strace = (strace_wrapper(trace_log) or []) if trace_log is not None else []
    if sandbox is not None:
        command = strace + sandbox.cgroup.join_argv(sandbox_argv(sandbox, cwd) + list(argv))
    else:
        command = (network_wrapper() if no_network else []) + strace + list(argv)
    rlimit = memory_bytes if sandbox is None or sandbox.cgroup.memory is None else None
    harness = os.getpid()

    def in_child() -> None:  # runs in the child, before exec
        # The direct child (strace, the cgroup shell or the agent itself) dies with the harness.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != harness:
            os._exit(126)  # the harness died before the signal was armed
        if rlimit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (rlimit, rlimit))

    before = set(descendants(os.getpid()))  # the caller's own children are not the agent's
    t0 = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=in_child)
        traced = bool(strace)
        outcome = Outcome(exit_code=None, timed_out=False, wall_s=0.0, command=command,
                          isolated=sandbox is not None,
                          cgroup=str(sandbox.cgroup.path) if sandbox else None)

        def agent_pids() -> list[int]:
            """The agent's processes, not the tracer: strace must live to log their exits."""
            if sandbox is not None:
                return [p for p in sandbox.cgroup.pids() if not _is_bwrap(p)]
            own = [p for p in descendants(harness) if p not in before and _alive(p)]
            return [p for p in own if not (traced and p == proc.pid)]

        def kill_everything() -> list[int]:
            pids = agent_pids()
            if sandbox is not None:
                sandbox.cgroup.kill()
            if not traced:  # with strace the group is strace's too: it must live to log
                _signal_group(proc.pid, signal.SIGKILL)
            for p in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
            return pids

        with _dies_with_the_harness(lambda: (kill_everything(), proc.kill(),
                                             sweep_descendants(exclude=before))):
            try:
                outcome.exit_code = proc.wait(timeout=time_limit)
            except subprocess.TimeoutExpired:
                outcome.timed_out = True
                outcome.term_sent = True
                for p in agent_pids():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    outcome.kill_sent = True
                    kill_everything()
                    try:
                        proc.wait(timeout=TRACER_WAIT_S)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                outcome.exit_code = None if proc.returncode < 0 else proc.returncode
            # The direct child ended. Did the tracer end before the agent did?
            left = agent_pids()
        outcome.wall_s = round(time.monotonic() - t0, 3)
        # Whatever the agent left running goes too: the whole cgroup, then (without the
        # sandbox) the group and any descendant that escaped it and was re-parented to us.
        outcome.swept = sorted(set(kill_everything()))
        if sandbox is not None:
            outcome.survivors = sandbox.cgroup.kill_and_wait()
        _signal_group(proc.pid, signal.SIGKILL)
        outcome.swept = sorted(set(outcome.swept) | set(sweep_descendants(exclude=before)))
        outcome.survivors += [p for p in descendants(os.getpid())
                              if p not in before and _alive(p)]
        if traced:
            log = trace_log.read_text(errors="replace") if trace_log.exists() else ""
            outcome.tracer = {"exit": proc.returncode, "outlived_agent": not left,
                              "log_complete": trace_complete(log)}
            outcome.tracer["intact"] = not left and outcome.tracer["log_complete"]
    return outcome


def _is_bwrap(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "bwrap"
    except OSError:
        return False


@contextlib.contextmanager
def _dies_with_the_harness(kill_all: Callable[[], object]) -> Iterator[None]:
    """While the agent runs, SIGTERM/SIGINT/SIGHUP to the harness kill every agent
    process first (`kill_all`), then do what they did before (a handler, or the
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
        kill_all()
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
