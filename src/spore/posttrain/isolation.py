"""The sandbox's view of the filesystem, as a mount plan and bubblewrap's argv (pure logic).

The agent runs under bubblewrap (`bwrap`, sandbox.py): a new mount, PID, IPC and
UTS namespace (and network namespace without network). Its root is an empty
tmpfs, made read-only at the end, and nothing of the host is in it unless the
plan puts it there: a whitelist, not a list of what to hide (red team F1, issue
#10: a read-only view of the whole host let an agent find a copy of the test
data in /tmp). `bwrap_argv` turns the plan into bwrap's mount options, in order:

    show PATH       the host's PATH bound read-only at its own path, where it exists
    writable PATH   the host's PATH bound read-write (the work folder only)
    link PATH       a symlink (merged /usr: /bin -> usr/bin), as on the host
    scratch PATH    a fresh, empty, writable tmpfs (/tmp, /dev/shm): private, gone after
    hide PATH       an empty read-only tmpfs over PATH, where PATH lies inside a shown folder
    readonly /      the root tmpfs read-only (last): no stray files outside the mounts above

What is shown: the system folders (`system`, e.g. /usr, /etc; sandbox.system_view
finds them), whatever the caller names in `shown` (the Python installation, the
agent's own program), the work folder (writable) with its base_model/ read-only
inside, and `shared` folders (RUN/egress/, the egress proxy's socket). /dev and
/proc are bwrap's own (`bwrap_argv`).

What is never shown, even inside a shown folder: the run folder (`secrets/`,
`run.json`, `trace/`, ...) but work/ and the shared folders, every path in
`hidden` (forbidden checkpoints, a task folder), and the run folder's parent,
where sibling runs keep their secrets, unless that parent is `/` or lies in a
system folder. A path named in `shown` that lies in any of these is dropped.

Deepest wins: steps run from shallow paths to deep ones, so a step on a path
overrides whatever its ancestors' steps did. A step that would change nothing
(hiding what is not shown, showing inside a shown folder) is left out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Where the system's programs and libraries live. /sys is the kernel's view of the
# devices (CPU topology, an accelerator's PCI data): torch and CUDA read it, and it holds
# no one's files. A run folder whose parent lies in one of these keeps its parent shown.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
# POSIX shared memory (multiprocessing, DataLoader workers) and /tmp: private and
# writable, so the agent neither fails there nor sees or leaves anything on the host.
SCRATCH = ("/tmp", "/dev/shm")
BASE_MODEL = "base_model"  # work/base_model: the base's copy, read-only in the sandbox


@dataclass(frozen=True)
class Step:
    action: str  # show | writable | link | scratch | hide | readonly
    path: str
    target: str = ""  # a link's target


def within(path: str, root: str) -> bool:
    """`path` is `root` or lies below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def hideable(parent: str) -> bool:
    """A run folder's parent may be covered unless the system lives there."""
    return parent != "/" and not any(within(parent, d) for d in (*SYSTEM_DIRS, "/proc", "/dev"))


def mount_plan(run_dir: str, *, system: Mapping[str, str | None] | None = None,
               shown: Iterable[str] = (), hidden: Iterable[str] = (),
               shared: Iterable[str] = ()) -> list[Step]:
    """The steps that give the agent the system (read-only), `shown` (read-only),
    `run_dir/work` (writable, its base_model/ read-only) and the `shared` folders
    (read-only), and nothing else. `system` maps each system folder present to its
    symlink's target, or None for a real folder (default: SYSTEM_DIRS, all real). Paths
    are absolute and resolved (no symlinks): the caller's job."""
    run_dir = posixpath.normpath(run_dir)
    work = posixpath.join(run_dir, "work")
    system = dict.fromkeys(SYSTEM_DIRS) if system is None else dict(system)
    hide = {run_dir, posixpath.join(run_dir, "secrets"), *map(posixpath.normpath, hidden)}
    shown = {s for s in map(posixpath.normpath, shown) if not any(within(s, h) for h in hide)}
    parent = posixpath.dirname(run_dir)
    if hideable(parent) and parent not in shown:
        hide.add(parent)

    wanted = {p: Step("hide", p) for p in hide}
    wanted |= {p: Step("show", p) if t is None else Step("link", p, t) for p, t in system.items()}
    wanted |= {p: Step("show", p) for p in shown} | {s: Step("scratch", s) for s in SCRATCH}
    wanted |= {work: Step("writable", work)}
    wanted |= {p: Step("show", p) for p in (posixpath.join(work, BASE_MODEL),
                                            *map(posixpath.normpath, shared))}
    steps: list[Step] = []
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        step = wanted[path]
        above = [p for p in wanted if p != path and within(path, p)]
        inherited = wanted[max(above, key=len)].action if above else "hide"  # root: empty
        if step.action == "show" and inherited == "show":
            continue  # visible anyway
        if step.action == "hide" and inherited in ("hide", "scratch"):
            continue  # nothing of the host is there to hide
        steps.append(step)
    return [*steps, Step("readonly", "/")]


# Device nodes an agent may need for an accelerator; the rest of the host's /dev (disks
# above all: uid 0 may read a raw block device without any capability) stays out.
ACCELERATOR_DEVICES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                       "/dev/nvidia-modeset", "/dev/dri", "/dev/kfd")


def bwrap_argv(bwrap: str, plan: list[Step], cwd: str, network: bool,
               devices: Iterable[str] = ()) -> list[str]:
    """bubblewrap's command line for `plan`, up to and including `--`.

    The sandbox: an empty root with what `plan` shows; every namespace but the user's
    and (with `network`) the network's is new (without `network`, the egress proxy's
    socket is the only way out, where a run allows hosts: egress.py); PID 1 inside is
    bwrap's own init, so the agent sees only its own processes in /proc; the session is
    new (no TIOCSTI into the harness's terminal); every capability is dropped (bwrap
    also sets no_new_privs); and `--die-with-parent` kills it with the process that
    started it (strace, or the harness)."""
    argv = [bwrap, "--dev", "/dev", "--proc", "/proc"]
    for dev in devices:
        argv += ["--dev-bind-try", dev, dev]
    # shown paths that are gone (a base_model/ a test's run folder lacks) are left out
    options = {"show": "--ro-bind-try", "writable": "--bind", "scratch": "--tmpfs",
               "hide": "--tmpfs"}
    for step in plan:
        if step.action == "link":
            argv += ["--symlink", step.target, step.path]
        elif step.action in ("scratch", "hide"):
            argv += [options[step.action], step.path]
        elif step.action in options:
            argv += [options[step.action], step.path, step.path]
    # after the binds, which need mount points made on the empty tmpfs mounts
    for step in plan:
        if step.action in ("hide", "readonly"):
            argv += ["--remount-ro", step.path]
    argv += ["--chdir", cwd, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if not network:
        argv.append("--unshare-net")
    return [*argv, "--"]
