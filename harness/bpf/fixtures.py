"""pytest fixtures that give BPF cases privileges, a bpffs directory, a cgroup and a leak guard.

The plugin registers them; without the plugin, load them with
``-p harness.bpf.fixtures``. They work whether or not bpffs and cgroup v2 are
already mounted: what is missing is mounted at a private temporary directory
for the session and unmounted afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bpf import libbpf, uapi

__all__ = [
    "bpf_privileges",
    "bpf_object_ids",
    "bpffs_root",
    "bpffs",
    "cgroup2_root",
    "cgroup2",
    "bpf_leak_guard",
]

# A map held only by a closing program goes after an RCU grace period (ms);
# cgroup teardown releases its programs from a workqueue. Both are quick but not instant.
LEAK_GRACE_SECONDS = 3.0


@functools.cache
def unavailable_reason() -> str | None:
    """Why bpf() cannot be used for the cases here, or None when it can."""
    try:
        # LPM tries need CAP_BPF on every kernel, unlike hash and array maps.
        fd = libbpf.map_create(uapi.MapType.LPM_TRIE, "probe", 8, 4, 1, map_flags=uapi.BPF_F_NO_PREALLOC)
    except libbpf.LibbpfMissing as exc:
        return str(exc)
    except libbpf.BPFError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return (
                f"needs root or CAP_BPF (with CAP_PERFMON and CAP_SYS_ADMIN): "
                f"bpf(BPF_MAP_CREATE) failed with {exc.errno_name}"
            )
        if exc.errno == errno.ENOSYS:
            return "kernel has no bpf() syscall (CONFIG_BPF_SYSCALL is off)"
        raise
    os.close(fd)
    return None


@pytest.fixture(scope="session")
def bpf_privileges() -> None:
    """Skip unless this process may create BPF objects (root or CAP_BPF, libbpf installed)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def id_walk_reason() -> str | None:
    """Why this process cannot list BPF objects by id, or None when it can.

    bpf_{prog,map,link}_get_next_id and get_fd_by_id need CAP_SYS_ADMIN, which root in a
    container or a user granted only CAP_BPF and CAP_PERFMON does not have.
    """
    try:
        libbpf.prog_get_next_id(0)
    except libbpf.BPFError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return f"listing BPF objects by id needs CAP_SYS_ADMIN: {exc.op} answered {exc.errno_name}"
        raise
    return None


@pytest.fixture(scope="session")
def bpf_object_ids(bpf_privileges) -> None:
    """Skip unless this process may list BPF objects by id and open them by id (CAP_SYS_ADMIN)."""
    reason = id_walk_reason()
    if reason:
        pytest.skip(reason)


# ---- mounts


def _mount_points(fstype: str) -> list[str]:
    """Mount points of fstype, from /proc/self/mountinfo (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split(" ", 1)[0] == fstype:
                raw = before.split(" ")[4]
                points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)  # the process's own: libc is loaded already


def mount(fstype: str, target: str) -> None:
    """Mount a fresh fstype at target through libc; OSError naming the mount if that fails."""
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    if libc.mount(fstype.encode(), os.fsencode(target), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} {fstype} {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    """Unmount target, detaching it lazily if something still holds it."""
    libc = _libc()
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.umount2(os.fsencode(target), 0) != 0:
        MNT_DETACH = 2  # something still holds it: detach lazily rather than leak the mount
        libc.umount2(os.fsencode(target), MNT_DETACH)


@contextlib.contextmanager
def _filesystem(fstype: str, preferred: str) -> Iterator[Path]:
    """A writable mount of fstype: preferred or another existing one, else a private one."""
    points = _mount_points(fstype)
    points.sort(key=lambda p: p != preferred)
    for point in points:
        if os.access(point, os.W_OK):
            yield Path(point)
            return
    private = tempfile.mkdtemp(prefix=f"pytest-{fstype}-")
    try:
        mount(fstype, private)
    except OSError as exc:
        os.rmdir(private)
        pytest.skip(f"no writable {fstype} mount and mounting one failed: {exc}")
    try:
        yield Path(private)
    finally:
        umount(private)
        os.rmdir(private)


@pytest.fixture(scope="session")
def bpffs_root(bpf_privileges) -> Iterator[Path]:
    """A bpffs mount point: /sys/fs/bpf when it is bpffs, else a private mount for the session."""
    with _filesystem("bpf", "/sys/fs/bpf") as root:
        yield root


@pytest.fixture
def bpffs(bpffs_root: Path) -> Iterator[Path]:
    """A fresh empty directory on bpffs; removed with whatever was pinned in it."""
    path = Path(tempfile.mkdtemp(prefix="pytest-", dir=bpffs_root))
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="session")
def cgroup2_root(bpf_privileges) -> Iterator[Path]:
    """A cgroup v2 mount point: an existing writable one, else a private mount for the session."""
    with _filesystem("cgroup2", "/sys/fs/cgroup") as root:
        yield root


@pytest.fixture
def cgroup2(cgroup2_root: Path) -> Iterator[Path]:
    """A fresh child cgroup (no processes are moved into it); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pytest-", dir=cgroup2_root))
    yield path
    # A cgroup can stay busy for a moment after its last user went away.
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---- leak guard


def _snapshot() -> dict[str, set[int]]:
    return {"prog": libbpf.prog_ids(), "map": libbpf.map_ids(), "link": libbpf.link_ids()}


def _describe(kind: str, id_: int) -> str:
    opener = {
        "prog": libbpf.prog_get_fd_by_id,
        "map": libbpf.map_get_fd_by_id,
        "link": libbpf.link_get_fd_by_id,
    }
    info_of = {"prog": libbpf.prog_info, "map": libbpf.map_info, "link": libbpf.link_info}
    try:
        fd = opener[kind](id_)
    except libbpf.BPFError:
        return f"{kind} {id_}"
    try:
        info = info_of[kind](fd)
    finally:
        os.close(fd)
    name = getattr(info, "name", "")
    return f"{kind} {id_} {name!r}" if name else f"{kind} {id_}"


@pytest.fixture(scope="session")
def _leak_guard_off(bpf_privileges) -> str | None:
    """Why the leak guard cannot work in this session; said once, as a warning, so it is not silent."""
    reason = id_walk_reason()
    if reason:
        warnings.warn(pytest.PytestWarning(f"bpf_leak_guard is off in this session: {reason}"), stacklevel=1)
    return reason


@pytest.fixture
def bpf_leak_guard(_leak_guard_off) -> Iterator[None]:
    """Fail the test if BPF programs, maps or links it created are still alive afterwards.

    Compares id sets before and after, so objects created meanwhile by other
    processes on the same kernel are blamed on the test: use one test process per kernel.
    Listing ids needs CAP_SYS_ADMIN; without it the guard is off, with a warning.
    """
    if _leak_guard_off:
        yield
        return
    before = _snapshot()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        now = _snapshot()
        left = {kind: sorted(now[kind] - before[kind]) for kind in now}
        if not any(left.values()):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    found = ", ".join(_describe(kind, id_) for kind, ids in left.items() for id_ in ids)
    pytest.fail(
        f"test left BPF objects alive after {LEAK_GRACE_SECONDS:.0f} s: {found}; "
        "close fds, unpin, detach or remove the cgroup it used",
        pytrace=False,
    )
