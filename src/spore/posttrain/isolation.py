"""`--isolate`: what the agent sees of the filesystem, as a mount plan (pure logic).

The agent runs in a private mount namespace (sandbox.py). Before its command
starts, `mountns.py` applies a plan there, one step after the other:

    hide PATH       an empty tmpfs over PATH: what was there is out of reach
    show PATH       PATH bind-mounted back at its own path (it lies under a hidden folder,
                    or it must be its own mount to be made writable again)
    scratch PATH    a fresh, empty, writable tmpfs over PATH
    readonly /      every mount read-only, recursively
    writable PATH   that one mount writable again

Hidden: the run folder (`secrets/`, `run.json`, `trace/`, ...), every forbidden
checkpoint, and the run folder's parent, where sibling runs keep their secrets,
unless that parent is `/` or lies in a system folder. Shown again: `work/`, and
whatever the agent needs that lies under a hidden folder (the Python
installation, its import path). Nothing under the run folder or a forbidden
checkpoint is ever shown again. An agent's own program must therefore live
outside the run folder's parent.

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
               read_only: bool = True) -> list[Step]:
    """The steps that leave the agent `run_dir/work` (writable) and nothing of the run's
    hidden material. Paths are absolute and resolved (no symlinks): the caller's job."""
    run_dir = posixpath.normpath(run_dir)
    work = posixpath.join(run_dir, "work")
    hide = {run_dir, posixpath.join(run_dir, "secrets"), *map(posixpath.normpath, forbidden)}
    keep = {k for k in map(posixpath.normpath, keep) if not any(within(k, h) for h in hide)}
    parent = posixpath.dirname(run_dir)
    if hideable(parent) and parent not in keep:
        hide.add(parent)

    wanted = {p: "hide" for p in hide} | {k: "show" for k in keep}
    wanted |= {work: "show"} | {s: "scratch" for s in SCRATCH}
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
