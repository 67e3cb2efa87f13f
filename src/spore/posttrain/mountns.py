"""Inside the agent's new mount namespace: apply a mount plan, drop privileges, exec the agent.

    python -I -S mountns.py PLAN_JSON COMMAND [ARG...]

PLAN_JSON is `isolation.mount_plan`'s steps as `[[action, path], ...]`. This file
runs as a plain script (no spore import, standard library only), started by
`unshare -m` (sandbox.isolation_wrapper); it never opens the hidden paths, it
only mounts over them. Any failure stops here with exit status 126: the agent
never runs half-isolated.

After the mounts, every capability goes (bounding set, ambient, inheritable,
permitted, effective) and no_new_privs is set, so the agent, even as uid 0,
cannot unmount or remount what hides the run's material, and no setuid program
gives the capabilities back. The parent-death signal is set to SIGKILL: if the
process that started this one (strace, or the harness) dies, the agent dies too.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys

MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 0x1, 0x8000, -100
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _c(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)),
           f"mount {fstype or 'bind'} on {target}")


def set_readonly(path: str, readonly: bool, recursive: bool) -> None:
    attr = MountAttr(attr_set=MOUNT_ATTR_RDONLY if readonly else 0,
                     attr_clr=0 if readonly else MOUNT_ATTR_RDONLY)
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(),
                        AT_RECURSIVE if recursive else 0, ctypes.byref(attr),
                        ctypes.sizeof(attr)),
           f"make {path} {'read-only' if readonly else 'writable'}")


def apply(steps: list[tuple[str, str]]) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing here propagates to the host
    # Opened before anything is hidden: a bind source that lies under a hidden folder
    # stays reachable through its descriptor.
    sources = {path: os.open(path, os.O_PATH) for action, path in steps
               if action == "show" and os.path.exists(path)}
    for action, path in steps:
        if action == "hide" and os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        elif action == "scratch" and os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        elif action == "show" and path in sources:
            if os.path.isdir(f"/proc/self/fd/{sources[path]}"):
                os.makedirs(path, exist_ok=True)
            elif not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "x").close()
            mount(f"/proc/self/fd/{sources[path]}", path, None, MS_BIND | MS_REC)
        elif action in ("readonly", "writable") and os.path.exists(path):
            set_readonly(path, action == "readonly", recursive=action == "readonly")
    for fd in sources.values():
        os.close(fd)


def drop_privileges() -> None:
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if ctypes.get_errno() != errno.EINVAL:  # EINVAL: past the last capability, all dropped
        _check(-1, f"drop capability {cap} from the bounding set")
    _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header, data = CapHeader(LINUX_CAPABILITY_VERSION_3, 0), (CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "drop capabilities")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "set the parent-death signal")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: mountns.py PLAN_JSON COMMAND [ARG...]", file=sys.stderr)
        return 126
    try:
        cwd = os.getcwd()
        apply([tuple(s) for s in json.loads(argv[0])])
        # Re-enter the folder by its path, through the new mounts: the old working
        # directory lies on the covered file system, where `..` still leads to secrets/.
        os.chdir(cwd)
        drop_privileges()
    except OSError as e:
        print(f"spore posttrain --isolate: {e}; the agent was not started", file=sys.stderr)
        return 126
    try:
        os.execvp(argv[1], argv[1:])
    except OSError as e:
        print(f"spore posttrain --isolate: cannot run {argv[1]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
