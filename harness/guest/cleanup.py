"""Inside a warm VM, after each run: kill what the run left running and remove what it created.

The fork server (harness.guest.forkserver) takes a ``snapshot`` right after
boot; when a run's child exits, ``clean`` kills every process the run left
running (the fork server is a child subreaper, so a process that escaped
with ``setsid`` or a double fork is still its descendant), compares BPF
programs, maps and links (by id), bpffs pins, cgroups and the scratch
directories (``/tmp``, ``/dev/shm``) with the snapshot, removes what the run
created (whatever was attached to a pin or cgroup goes with it) and says in
``Cleaned`` what it removed and what it could not: objects held somewhere it
cannot see (a program attached with the legacy API to a cgroup that existed
at boot, a process that escaped) are leftovers, and the host powers the VM
off so the next run boots fresh.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from harness import protocol
from harness.bpf import libbpf

BPFFS = "/sys/fs/bpf"
CGROUP = "/sys/fs/cgroup"
SCRATCH = ("/tmp", "/dev/shm", "/var/tmp")  # where a test may leave files in the guest
LOWER = "/run/harness-lower"  # see mount_lower
# Freeing a closed map or program is deferred to RCU and work queues; under TCG
# a run's objects took up to about a second to disappear.
SETTLE_SECONDS = 10.0


@dataclass
class Snapshot:
    """What exists in the guest at one moment."""

    ids: dict[str, set[int]]  # "prog" | "map" | "link" -> ids
    pins: set[str]
    cgroups: set[str]
    scratch: set[str]


def _ids() -> dict[str, set[int]]:
    out = {}
    for kind, read in (("prog", libbpf.prog_ids), ("map", libbpf.map_ids), ("link", libbpf.link_ids)):
        try:
            out[kind] = read()
        except libbpf.BPFError:  # links have ids since 5.8
            out[kind] = set()
    return out


def _tree(root: str, dirs_only: bool) -> set[str]:
    found: set[str] = set()
    for top, dirs, files in os.walk(root):
        found.update(os.path.join(top, d) for d in dirs)
        if not dirs_only:
            found.update(os.path.join(top, f) for f in files)
    return found


def snapshot() -> Snapshot:
    return Snapshot(
        ids=_ids(),
        pins=_tree(BPFFS, dirs_only=False),
        cgroups=_tree(CGROUP, dirs_only=True),
        scratch=_scratch(),
    )


def _overlay_upper(mountpoint: str) -> str | None:
    """The upper directory of the overlay mounted at ``mountpoint``, if one is."""
    upper = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, tail = line.partition(" - ")
            fstype, _, options = (tail.split() + ["", "", ""])[:3]
            if fields.split()[4] != mountpoint:
                continue
            upper = None  # the last mount at a path is the one seen there
            if fstype == "overlay":
                opts = dict(o.partition("=")[::2] for o in options.split(","))
                upper = opts.get("upperdir")
    return upper


def _scratch() -> set[str]:
    """Every path a run could have written under the scratch directories, as seen in the guest.

    vng mounts /tmp as an overlay of the host's /tmp: only its upper directory
    holds what the guest wrote (walking the merged view would walk the host's
    whole /tmp over 9p). Other mounts below a root (the results directory is
    mounted at its host path, often under /tmp) are not entered.
    """
    found: set[str] = set()
    for root in SCRATCH:
        base = _overlay_upper(root) or root
        with contextlib.suppress(OSError):
            device = os.lstat(base).st_dev
            for top, dirs, files in os.walk(base):
                dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == device]
                rel = os.path.relpath(top, base)
                found.update(os.path.normpath(os.path.join(root, rel, name)) for name in (*dirs, *files))
    return found


def mount_lower() -> None:
    """The root file system without what is mounted on it, at LOWER: there /tmp is the host's,
    which tells a file a run created from one of the host's it changed."""
    os.makedirs(LOWER, exist_ok=True)
    if not os.path.ismount(LOWER):
        subprocess.run(["mount", "--bind", "/", LOWER], check=True, capture_output=True)


def _descendants() -> dict[int, str]:
    """This process's descendants (pid -> command name): with the subreaper flag, all a run left."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        parent[int(entry)], names[int(entry)] = int(rest.split()[1]), name
    found: dict[int, str] = {}
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier and pid not in found}
        found.update((pid, names[pid]) for pid in frontier)
    return found


def _kill_leftover_processes(deadline: float) -> tuple[list[str], list[str]]:
    """Kill and reap what the run left running: (killed, still alive at the deadline)."""
    killed: dict[int, str] = {}
    while True:
        left = _descendants()
        if not left or time.monotonic() > deadline:
            break
        for pid, name in left.items():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            killed.setdefault(pid, name)
        while True:  # reap them: each is our child now
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.01)
    return (
        [f"process {pid} ({name})" for pid, name in sorted(killed.items())],
        [f"process {pid} ({name}, cannot be killed)" for pid, name in sorted(left.items())],
    )


def _remove(path: str) -> None:
    """A file, link or directory tree (pins come deepest first, so their directories are empty)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _remove_scratch(baseline: set[str]) -> tuple[list[str], list[str]]:
    """Remove what the run created under the scratch directories (each new tree once).

    A path the host's /tmp also has was changed, not created, by the run: the
    overlay cannot be put back without a reboot, so it is a leftover."""
    removed, stuck = [], []
    gone: set[str] = set()
    overlaid = tuple(f"{root}/" for root in SCRATCH if _overlay_upper(root))
    for path in sorted(_scratch() - baseline):
        if os.path.dirname(path) in gone:
            gone.add(path)
            continue
        if path.startswith(overlaid) and os.path.lexists(LOWER + path):
            if not os.path.isdir(LOWER + path):
                stuck.append(f"file {path} (a file of the host's {path.split('/')[1]} the run changed)")
            continue  # a host directory the run wrote in: what it created inside comes next
        try:
            _remove(path)
            removed.append(f"file {path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            stuck.append(f"file {path} ({exc.strerror})")
        gone.add(path)
    return removed, stuck


def _describe(kind: str, id_: int) -> str:
    get, info = {
        "prog": (libbpf.prog_get_fd_by_id, libbpf.prog_info),
        "map": (libbpf.map_get_fd_by_id, libbpf.map_info),
        "link": (libbpf.link_get_fd_by_id, libbpf.link_info),
    }[kind]
    try:
        fd = get(id_)
    except libbpf.BPFError:
        return f"{kind} {id_}"
    try:
        found = info(fd)
        name = getattr(found, "name", "")
        kind_of = getattr(found, "type", None)
        return f"{kind} {id_}" + (f" {name!r}" if name else "") + (f" type {kind_of}" if kind_of else "")
    except libbpf.BPFError:
        return f"{kind} {id_}"
    finally:
        os.close(fd)


def _kill_cgroup(path: str) -> None:
    kill = os.path.join(path, "cgroup.kill")  # 5.14+
    try:
        if os.path.exists(kill):
            with open(kill, "w") as f:
                f.write("1")
            return
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(line) for line in f if line.strip()]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _rmdir(path: str, deadline: float) -> bool:
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # killed processes leave the cgroup asynchronously


def clean(baseline: Snapshot, child_pgid: int) -> protocol.Cleaned:
    """Remove what the run added; report what could not be removed."""
    started = time.monotonic()
    deadline = started + SETTLE_SECONDS
    try:
        os.killpg(child_pgid, signal.SIGKILL)  # what the run started and left running
    except OSError:
        pass
    removed, leftovers = _kill_leftover_processes(deadline)  # including what escaped the group
    files, stuck = _remove_scratch(baseline.scratch)
    removed += files
    leftovers += stuck
    now = snapshot()
    for path in sorted(now.cgroups - baseline.cgroups, key=lambda p: -p.count("/")):
        _kill_cgroup(path)
    for path in sorted(now.cgroups - baseline.cgroups, key=lambda p: -p.count("/")):
        if _rmdir(path, deadline):
            removed.append(f"cgroup {path}")
        else:
            leftovers.append(f"cgroup {path} (cannot be removed)")
    for path in sorted(now.pins - baseline.pins, key=lambda p: -p.count("/")):
        try:
            _remove(path)
            removed.append(f"pin {path}")
        except OSError as exc:
            leftovers.append(f"pin {path} ({exc.strerror})")
    while True:
        ids = _ids()
        extra = {kind: ids[kind] - baseline.ids.get(kind, set()) for kind in ids}
        if not any(extra.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for kind, found in extra.items():
        leftovers.extend(_describe(kind, i) for i in sorted(found))
    return protocol.Cleaned(
        status=0, removed=removed, leftovers=leftovers, seconds=round(time.monotonic() - started, 3)
    )
