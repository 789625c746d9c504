"""`python -m harness vm list|stop`: the warm VMs that `pytest --reuse-vm` keeps running."""

from __future__ import annotations

import sys
import time

from harness import ids
from harness.vm import warm


def register(subparsers) -> None:
    p = subparsers.add_parser("vm", help="list and stop warm VMs (pytest --reuse-vm)", description=__doc__)
    sub = p.add_subparsers(dest="vm_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="show warm VMs: kernel, age, idle time, runs served")
    ls.set_defaults(func=cmd_list)
    stop = sub.add_parser(
        "stop",
        help="power warm VMs off",
        description="Power off the warm VMs of KERNEL (a name as test ids carry it, "
        "e.g. 6.1.192-3, or a prefix such as 6.1), or all of them with --all.",
    )
    stop.add_argument("kernel", nargs="?", metavar="KERNEL")
    stop.add_argument("--all", action="store_true", help="every warm VM of this user")
    stop.set_defaults(func=cmd_stop)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}min" if seconds >= 60 else f"{seconds:.0f}s"


def _say_refused(refused: list[str]) -> None:
    for why in refused:
        print(f"not shown: {why}", file=sys.stderr)


def cmd_list(args) -> int:
    refused: list[str] = []
    kept = warm.kept_vms(refused=refused)
    _say_refused(refused)
    if not kept:
        print(f"no warm VMs (state in {warm.state_root()})")
        return 0
    now = time.time()
    print(
        f"{'VM':<20} {'kernel':<14} {'state':<8} {'age':>9} {'idle':>9} {'runs':>5}  {'in use by':<9}  keeper"
    )
    for k in kept:
        r = k.record
        user = str(r.client) if r.client else "-"
        idle = "-" if r.client else _minutes(now - r.last_used)
        print(
            f"{k.dir.name:<20} {r.kernel:<14} {r.state:<8} {_minutes(now - r.started):>9} "
            f"{idle:>9} {r.runs:>5}  {user:<9}  pid {k.pid}, idle timeout {_minutes(r.idle_timeout)}, "
            f"{r.accel} {r.cpus} vCPU {r.memory}"
        )
    return 0


def cmd_stop(args) -> int:
    if not args.all and not args.kernel:
        print("error: say which warm VMs to stop: a KERNEL (e.g. 6.1) or --all", file=sys.stderr)
        return 2
    refused: list[str] = []
    kept = [
        k
        for k in warm.kept_vms(refused=refused)
        if args.all or ids.names_kernel(args.kernel, k.record.kernel)
    ]
    _say_refused(refused)
    if not kept:
        print("no warm VM matched" + (f" kernel {args.kernel}" if args.kernel else ""))
        return 0 if args.all else 1
    for k in kept:
        killed = warm.stop(k)
        how = "killed (it did not power off in time)" if killed else "powered off"
        print(f"{k.dir.name}: {k.record.kernel} {how}")
    return 0
