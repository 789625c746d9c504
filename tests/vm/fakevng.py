#!/usr/bin/env python3
"""fakevng: a stand-in for virtme-ng's ``vng`` that boots no kernel; the guest command runs on this host.

Only for the harness's own tests of the host-guest loop (tests/vm/test_loop_fake.py):
dispatch, report replay, a VM that dies or hangs, protocol errors and reaping,
in seconds instead of 20-50 s per boot. It never stands in for a kernel: the
VM tests (tests/vm/test_vm_lost.py and the others marked ``vm``) boot real ones.

The harness runs it when ``HARNESS_VNG`` names it (see harness.vm.vng). It
takes the command line harness.vm.vng builds and refuses any other, changes to
``--cwd`` and runs the shell command after ``--`` with its standard input and
output as the protocol channel and standard error as the console, as vng does.
``-r IMAGE`` must exist and is otherwise ignored.

The command runs in a private mount namespace (``unshare --mount``, so this
needs root, which the harness's BPF tests need anyway) shaped like a vng
guest: the host's files, a private ``/run``, ``/tmp`` an overlay (its upper
layer in ``/run``, as vng has it) whose writes vanish with the
"VM", ``--rwdir`` paths written through to the host. The guest agent's own
mounts (bpffs, cgroup2) stay in the namespace. The kernel log it reads is the
host's ``/dev/kmsg``.

The guest's environment carries ``FAKEVNG_PID``: killing that process ends the
"VM" as QEMU dying would, since the guest command is killed with its parent
(PR_SET_PDEATHSIG).

Knobs for tests, from the environment:

- ``FAKEVNG_STDOUT``: a line printed on standard output before the guest
  starts (what a chatty vng, or a guest of another harness version, sends);
- ``FAKEVNG_DIE``: exit with this status at "boot", after a panic line on the
  console, without running the guest;
- ``FAKEVNG_PANIC_HANG``: print an early panic on the console and hang, as QEMU
  does with a kernel that panics before ``panic=-1`` is in force.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

INSIDE = "--fakevng-inside"  # set on the re-run inside the new mount namespace
PR_SET_PDEATHSIG = 1
MS_BIND = 0x1000
LIBC = ctypes.CDLL(None, use_errno=True)


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="fakevng", description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--force-9p", action="store_true")
    ap.add_argument("-r", dest="image", required=True)
    ap.add_argument("-m", dest="memory", required=True)
    ap.add_argument("-p", dest="cpus", type=int, required=True)
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--disable-kvm", action="store_true")
    ap.add_argument("--rwdir", action="append", default=[], metavar="GUEST=HOST")
    ap.add_argument("--append", action="append", default=[])
    ap.add_argument("--qemu-opts", action="append", default=[])  # the PVH vmlinux: no kernel here
    ap.add_argument("script", nargs=1, help="the shell command, after --")
    return ap.parse_args(argv)


def console(text: str) -> None:
    print(f"fakevng: {text}", file=sys.stderr, flush=True)


def boot(argv: list[str]) -> int:
    """The part vng does on the host, then the move into a private mount namespace."""
    args = parse(argv)
    if not os.path.isfile(args.image):
        console(f"{args.image} does not exist")
        return 1
    console(f"no kernel: {args.image} is not booted; the guest command runs on this host")
    if os.environ.get("FAKEVNG_STDOUT"):
        print(os.environ["FAKEVNG_STDOUT"], flush=True)
    if os.environ.get("FAKEVNG_PANIC_HANG"):
        console("PANIC: early exception 0x06 IP 10:ffffffff81a1e1db error 0 cr2 0xffff888004401000")
        time.sleep(3600)
    if os.environ.get("FAKEVNG_DIE"):
        console("Kernel panic - not syncing: FAKEVNG_DIE is set")
        return int(os.environ["FAKEVNG_DIE"])
    # exec keeps this pid, the one the harness started and kills
    unshare = ["unshare", "--mount", "--propagation", "private"]
    os.execvp(unshare[0], [*unshare, sys.executable, os.path.abspath(__file__), INSIDE, *argv])
    return 127  # not reached


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, options: str | None = None):
    """mount(2) itself: mount(8) would resolve a /proc/self/fd source to a path, which the overlay hides."""
    enc = [None if x is None else x.encode() for x in (source, target, fstype, options)]
    if LIBC.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def guest_filesystem(rwdirs: list[str]) -> None:
    """A private /run, /tmp an overlay over the host's (writes stay private), then the --rwdir paths bound back."""
    binds = []
    for spec in rwdirs:
        guest, _, host = spec.partition("=")
        binds.append((guest, os.open(host or guest, os.O_PATH | os.O_DIRECTORY)))
    lower = os.open("/tmp", os.O_PATH | os.O_DIRECTORY)
    mount("fakevng-run", "/run", "tmpfs", 0, "mode=0755")  # as vng's guest: its own /run
    upper, work = "/run/tmp/overlay/upper", "/run/tmp/overlay/work"
    os.makedirs(upper)
    os.chmod(upper, os.stat(f"/proc/self/fd/{lower}").st_mode & 0o7777)  # /tmp's 1777
    os.makedirs(work)
    mount("overlay", "/tmp", "overlay", 0, f"lowerdir=/proc/self/fd/{lower},upperdir={upper},workdir={work}")
    os.close(lower)
    for guest, fd in binds:
        os.makedirs(guest, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", guest, None, MS_BIND)
        os.close(fd)


def die_with_parent() -> None:
    if LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def run_guest(argv: list[str]) -> int:
    """Inside the namespace: the guest's filesystem, then the command, as the guest's init would."""
    args = parse(argv)
    guest_filesystem(args.rwdir)
    os.chdir(args.cwd)
    console("starting script")
    env = dict(os.environ, FAKEVNG_PID=str(os.getpid()))
    proc = subprocess.Popen(["sh", "-c", args.script[0]], env=env, preexec_fn=die_with_parent)
    code = proc.wait()
    console("reboot: Power down")
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    if argv[:1] == [INSIDE]:
        return run_guest(argv[1:])
    return boot(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
