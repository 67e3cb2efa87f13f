"""One cgroup v2 per run: every agent process in it, limits on it, one kill for all of it.

A process group can be left (`setsid`), a process tree can be left (double fork), and a
tracer can be killed; a cgroup cannot be left by an unprivileged process, and every
child starts in its parent's cgroup. So the harness makes a child cgroup of its own,
the sandbox's first process moves itself in before it execs bubblewrap
(`join_argv`), and at the limit or when the agent exits the harness writes `1` to
`cgroup.kill` (Linux >= 5.14), which SIGKILLs every process in it at once.

    <cgroup2 mount>/<the harness's own cgroup>/spore-<pid>-<random>/
        cgroup.procs     the run's processes (the harness reads them for SIGTERM)
        cgroup.kill      write 1: SIGKILL to all of them
        cgroup.events    "populated 0" once they are all gone
        memory.max       --memory-limit, where the memory controller is available
        cpu.max          --cpus, where the cpu controller is available

The cgroup2 mount is /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a
hybrid one (controllers in v1, membership and cgroup.kill in v2). Where a controller is
not available to the harness's cgroup, `Limits` says so and the caller falls back or
refuses (harness.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

PROC_MOUNTINFO = Path("/proc/self/mountinfo")
PROC_CGROUP = Path("/proc/self/cgroup")
CPU_PERIOD_US = 100_000
# The sandbox's first process: a shell that joins the cgroup ($0) and execs bwrap ($@).
# resources.parse_strace recognizes it as the first line of a sandboxed trace.
JOIN_SHELL = 'echo $$ > "$0" && exec "$@"'


def cgroup2_mount(mountinfo: str) -> Path | None:
    """The first cgroup2 mount point in a mountinfo text (proc(5)), or None."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype == "cgroup2":
            return Path(fields[4])
    return None


def own_cgroup(proc_cgroup: str) -> str:
    """This process's cgroup v2 path ("0::/a/b" -> "a/b"); "" for the root."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    return ""


class CgroupError(RuntimeError):
    pass


@dataclass
class RunCgroup:
    path: Path
    memory: str | None = None  # "memory.max" when the cgroup caps memory
    cpu: str | None = None  # "cpu.max" when the cgroup caps CPU

    @classmethod
    def create(cls, memory_bytes: int | None = None, cpus: float | None = None,
               root: Path | None = None) -> RunCgroup:
        """A new child of the harness's cgroup, or a CgroupError saying why not."""
        if root is None:
            mount = cgroup2_mount(PROC_MOUNTINFO.read_text())
            if mount is None:
                raise CgroupError("no cgroup v2 file system is mounted (look for cgroup2 in "
                                  "/proc/self/mountinfo)")
            root = mount / own_cgroup(PROC_CGROUP.read_text())
        if not (root / "cgroup.procs").is_file():
            raise CgroupError(f"{root} is not a cgroup v2 folder")
        if not os.access(root, os.W_OK):
            raise CgroupError(f"{root} is not writable: the harness cannot make the run's cgroup")
        path = root / f"spore-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError as e:
            raise CgroupError(f"cannot make a cgroup under {root} ({e.strerror})") from None
        group = cls(path)
        if not (path / "cgroup.kill").is_file():
            group.remove()
            raise CgroupError("this kernel has no cgroup.kill (Linux >= 5.14 needed)")
        if memory_bytes is not None and group._enable(root, "memory"):
            (path / "memory.max").write_text(f"{memory_bytes}\n")
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0\n")
            group.memory = "memory.max"
        if cpus is not None and group._enable(root, "cpu"):
            (path / "cpu.max").write_text(f"{round(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}\n")
            group.cpu = "cpu.max"
        return group

    def _enable(self, root: Path, controller: str) -> bool:
        """Turn `controller` on for the run's cgroup; False where the parent cannot."""
        if controller not in (root / "cgroup.controllers").read_text().split():
            return False
        if controller not in (root / "cgroup.subtree_control").read_text().split():
            try:  # refused when the parent holds processes itself (the "no internal processes" rule)
                (root / "cgroup.subtree_control").write_text(f"+{controller}\n")
            except OSError:
                return False
        return (self.path / f"{controller}.max").is_file()

    def join_argv(self, argv: list[str]) -> list[str]:
        """`argv`, started by a shell that first moves itself into the cgroup: everything it
        execs and forks is then in it, while the tracer that starts it stays outside."""
        return ["/bin/sh", "-c", JOIN_SHELL, str(self.path / "cgroup.procs"),
                *argv]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def populated(self) -> bool:
        try:
            events = (self.path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False
        return "populated 1" in events

    def kill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / "cgroup.kill").write_text("1\n")

    def kill_and_wait(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL everything in the cgroup; the pids still there after `timeout` (none, unless
        the kernel is stuck on them, e.g. in uninterruptible I/O)."""
        self.kill()
        end = time.monotonic() + timeout
        while self.populated() and time.monotonic() < end:
            time.sleep(0.02)
        return self.pids()

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()
