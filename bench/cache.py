"""B4 cache: resolving and verifying a cached kernel, with the network cut off (no VM).

In-process, ``no_network`` makes any socket and any apt-get/apt-cache call
raise; in fresh interpreters the mirrors point at a port where nothing
listens and apt is replaced by a tattletale on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import time
from pathlib import Path
from unittest import mock

from bench.measure import PYTHON, REPO, Bench, wait_quiet

UNREACHABLE = "http://127.0.0.1:9/"  # discard port: nothing listens, a fetch fails at once


def b4(bench: Bench) -> None:
    reps = 3 if bench.quick else 7
    quiet = wait_quiet(bench.quiet_limit, log=bench.log)
    inproc = measure_resolve_in_process("6.12", reps)
    fresh = measure_resolve_fresh_process("6.12", reps, Path(bench.home))
    for r in (inproc, fresh):
        r.update(load_before=quiet["load"], quiet=quiet["quiet"])
    bench.measurements["b4-in-process"] = inproc
    bench.measurements["b4-fresh-process"] = fresh
    bench.row(
        "B4",
        "`resolve('6.12')` of a cached kernel, in-process, network cut off (median)",
        inproc["median"],
        "s",
        target="< 0.2 s",
        met=inproc["median"] < 0.2,
        n=reps,
        labels=("b4-in-process",),
    )
    bench.row(
        "B4",
        "fresh process: import harness.kernels + resolve, mirrors unreachable, apt-get shimmed (median)",
        fresh["median"],
        "s",
        target="< 0.2 s",
        met=fresh["median"] < 0.2,
        n=reps,
        labels=("b4-fresh-process",),
    )
    bench.row(
        "B4",
        "same fresh process, whole `python -c` wall clock incl. interpreter start (median)",
        fresh["median_wall"],
        "s",
        n=reps,
        labels=("b4-fresh-process",),
    )


class NetworkUsed(RuntimeError):
    """Resolving a cached kernel tried to reach the network or apt."""


@contextlib.contextmanager
def no_network():
    """Make any socket, and any apt-get/apt-cache subprocess, raise NetworkUsed."""
    real_popen_init = subprocess.Popen.__init__

    class Refused(socket.socket):
        def __init__(self, *a, **kw):
            raise NetworkUsed("a socket was opened")

    def popen_init(self, args, *a, **kw):
        argv = [args] if isinstance(args, (str, bytes)) else list(args)
        if argv and Path(str(argv[0])).name.startswith("apt"):
            raise NetworkUsed(f"apt was called: {argv}")
        real_popen_init(self, args, *a, **kw)

    with (
        mock.patch.object(socket, "socket", Refused),
        mock.patch.object(subprocess.Popen, "__init__", popen_init),
    ):
        yield


def measure_resolve_in_process(spec: str, reps: int) -> dict:
    """Median seconds of harness.kernels.resolve(spec) (cache lookup + sha256 check), network cut off."""
    from harness import kernels  # noqa: PLC0415 - imported once, outside the timed part

    times = []
    with no_network():
        for _ in range(reps):
            started = time.perf_counter()
            k = kernels.resolve(spec, fetch=False, progress=False)
            times.append(time.perf_counter() - started)
    return {
        "kernel": k.name,
        "release": k.release,
        "times": [round(t, 4) for t in times],
        "median": round(statistics.median(times), 4),
        "network": "sockets and apt refused",
    }


FRESH = """
import json, time
t = time.perf_counter()
from harness import kernels
k = kernels.resolve({spec!r}, progress=False)
print(json.dumps({{"seconds": time.perf_counter() - t, "name": k.name}}))
"""


def measure_resolve_fresh_process(spec: str, reps: int, scratch: Path) -> dict:
    """resolve(spec) in fresh interpreters with unreachable mirrors and apt replaced by a tattletale."""
    shim = scratch / "apt-shim"
    shim.mkdir(parents=True, exist_ok=True)
    called = scratch / "apt-called"
    called.unlink(missing_ok=True)
    for tool in ("apt-get", "apt-cache"):
        p = shim / tool
        p.write_text(f"#!/bin/sh\necho \"$0 $*\" >> '{called}'\nexit 100\n")
        p.chmod(0o755)
    env = dict(os.environ)
    env.update(
        HARNESS_DEBIAN_MIRROR=UNREACHABLE,
        HARNESS_MAINLINE_MIRROR=UNREACHABLE,
        PATH=f"{shim}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    inside, walls = [], []
    for _ in range(reps):
        started = time.perf_counter()
        r = subprocess.run(
            [PYTHON, "-c", FRESH.format(spec=spec)], cwd=REPO, env=env, capture_output=True, text=True
        )
        walls.append(time.perf_counter() - started)
        if r.returncode != 0:
            raise RuntimeError(f"resolve({spec!r}) in a fresh process failed:\n{r.stderr}")
        inside.append(json.loads(r.stdout.strip().splitlines()[-1])["seconds"])
    return {
        "times": [round(t, 4) for t in inside],
        "median": round(statistics.median(inside), 4),
        "walls": [round(t, 4) for t in walls],
        "median_wall": round(statistics.median(walls), 4),
        "apt_called": called.read_text() if called.exists() else "",
        "network": f"mirrors {UNREACHABLE}; apt-get/apt-cache shimmed",
    }
