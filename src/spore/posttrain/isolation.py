"""The sandbox's view of the filesystem, as a mount plan and bubblewrap's argv (pure logic).

The agent runs under bubblewrap (`bwrap`, sandbox.py): a new mount, PID, IPC and
UTS namespace (and network namespace without network) whose root is the host's
`/` bound read-only, with a fresh /proc and a minimal /dev. `bwrap_argv` turns
the plan below into bwrap's mount options, applied in order:

    hide PATH       an empty tmpfs over PATH: what was there is out of reach
    show PATH       PATH bind-mounted back at its own path (it lies under a hidden folder,
                    or it must be its own mount to be made writable again)
    scratch PATH    a fresh, empty, writable tmpfs over PATH
    readonly /      every mount read-only, recursively (bwrap: `--ro-bind / /`, first)
    writable PATH   that one mount writable again (bwrap: `--bind`, not `--ro-bind`)

Hidden: the run folder (`secrets/`, `run.json`, `trace/`, ...), every forbidden
checkpoint, and the run folder's parent, where sibling runs keep their secrets,
unless that parent is `/` or lies in a system folder. Shown again: `work/`, and
whatever the agent needs that lies under a hidden folder (the Python
installation, its import path). Nothing else under the run folder or a forbidden
checkpoint is ever shown again, with one exception the harness names itself:
`shared` folders (RUN/egress/, the egress proxy's socket and nothing else) are
shown read-only. An agent's own program must therefore live outside the run
folder's parent.

Deepest wins: steps run from shallow paths to deep ones, so a step on a path
overrides whatever its ancestors' steps did. A step that would change nothing
(hiding inside a hidden folder, showing what is visible anyway) is left out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

# Where the system's programs and libraries live: a parent in here is never hidden.
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/var",
               "/proc", "/sys", "/dev", "/run", "/boot")
# POSIX shared memory and semaphores (multiprocessing, DataLoader workers): private and
# writable, so the agent neither fails there nor leaves anything behind on the host.
SCRATCH = ("/dev/shm",)


@dataclass(frozen=True)
class Step:
    action: str  # hide | show | scratch | readonly | writable
    path: str


def within(path: str, root: str) -> bool:
    """`path` is `root` or lies below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def hideable(parent: str) -> bool:
    """A run folder's parent may be covered unless the system lives there."""
    return parent != "/" and not any(within(parent, d) for d in SYSTEM_DIRS)


def mount_plan(run_dir: str, forbidden: Iterable[str] = (), keep: Iterable[str] = (),
               read_only: bool = True, shared: Iterable[str] = ()) -> list[Step]:
    """The steps that leave the agent `run_dir/work` (writable), the `shared` folders
    (read-only) and nothing of the run's hidden material. Paths are absolute and resolved
    (no symlinks): the caller's job."""
    run_dir = posixpath.normpath(run_dir)
    work = posixpath.join(run_dir, "work")
    hide = {run_dir, posixpath.join(run_dir, "secrets"), *map(posixpath.normpath, forbidden)}
    keep = {k for k in map(posixpath.normpath, keep) if not any(within(k, h) for h in hide)}
    parent = posixpath.dirname(run_dir)
    if hideable(parent) and parent not in keep:
        hide.add(parent)

    wanted = {p: "hide" for p in hide} | {k: "show" for k in keep}
    wanted |= {work: "show"} | {s: "scratch" for s in SCRATCH}
    wanted |= {posixpath.normpath(s): "show" for s in shared}
    steps: list[Step] = []
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        action = wanted[path]
        above = [p for p in wanted if p != path and within(path, p)]
        inherited = wanted[max(above, key=len)] if above else "show"
        # work and scratch folders get mounts of their own: they are made writable below
        if action == inherited and path != work and action != "scratch":
            continue
        steps.append(Step(action, path))
    if read_only:
        steps.append(Step("readonly", "/"))
        steps += [Step("writable", p) for p in (work, *SCRATCH)]
    return steps


# Device nodes an agent may need for an accelerator; the rest of the host's /dev (disks
# above all: uid 0 may read a raw block device without any capability) stays out.
ACCELERATOR_DEVICES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                       "/dev/nvidia-modeset", "/dev/dri", "/dev/kfd")


def bwrap_argv(bwrap: str, plan: list[Step], cwd: str, network: bool,
               devices: Iterable[str] = ()) -> list[str]:
    """bubblewrap's command line for `plan`, up to and including `--`.

    The sandbox: every namespace but the user's and (with `network`) the network's is
    new (without `network`, the egress proxy's socket is the only way out, where a run
    allows hosts: egress.py); PID 1 inside is bwrap's own init, so the agent sees only
    its own processes in /proc; the session is new (no TIOCSTI into the harness's
    terminal); every capability is dropped (bwrap also sets no_new_privs); and
    `--die-with-parent` kills it with the process that started it (strace, or the harness)."""
    writable = {s.path for s in plan if s.action == "writable"}
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for dev in devices:
        argv += ["--dev-bind-try", dev, dev]
    hidden = [s.path for s in plan if s.action == "hide"]
    for step in plan:
        if step.action == "hide":
            argv += ["--tmpfs", step.path]
        elif step.action == "show":
            argv += ["--bind" if step.path in writable else "--ro-bind", step.path, step.path]
        elif step.action == "scratch":
            argv += ["--tmpfs", step.path]
    for path in hidden:  # after the binds: they need mount points made on the empty tmpfs
        argv += ["--remount-ro", path]
    argv += ["--chdir", cwd, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if not network:
        argv.append("--unshare-net")
    return [*argv, "--"]
