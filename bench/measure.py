"""Taking one measurement: wait for a quiet machine, run a command, stamp its lines, watch the load.

Other sessions share the machine: every measurement first waits for no QEMU
to run and a 1-minute load average below ``QUIET_LOAD``, and records the load
before, after and at its peak during the run, with how many QEMUs ran meanwhile.
``Bench`` keeps the measurements and the result rows of one benchmark run;
the VMs it boots outside the harness get the harness's own vng command line
(``harness.vm.vng``), so the floors are the boots the harness does.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import logs
from harness.vm import accel, pagecache, vng

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUIET_LOAD = 1.0


def wait_quiet(limit: float, *, poll: float = 10.0, log=print) -> dict:
    """Wait until no QEMU runs and the 1-minute load is below QUIET_LOAD, at most ``limit`` s.

    Measuring on a busy machine is still better than none: after ``limit`` the
    measurement goes ahead and is marked as not quiet.
    """
    started = time.monotonic()
    announced = False
    while True:
        qemu = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout.split()
        load = os.getloadavg()
        waited = time.monotonic() - started
        if not qemu and load[0] < QUIET_LOAD:
            return {"quiet": True, "waited": round(waited, 1), "load": [round(x, 2) for x in load]}
        if waited >= limit:
            log(
                f"  machine still busy after {waited:.0f} s (QEMU pids {qemu}, load {load[0]:.2f}); "
                "measuring anyway, marked not quiet"
            )
            return {"quiet": False, "waited": round(waited, 1), "load": [round(x, 2) for x in load]}
        if not announced:
            log(f"  waiting for a quiet machine (QEMU pids {qemu}, load {load[0]:.2f}) ...")
            announced = True
        time.sleep(poll)


def qemu_count() -> int:
    return len(subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout.split())


class Watch:
    """Samples, while a measurement runs, how many QEMUs run and the peak 1-minute load."""

    def __init__(self, every: float = 2.0):
        self.max_qemu, self.peak_load = 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.max_qemu = max(self.max_qemu, qemu_count())
            self.peak_load = max(self.peak_load, os.getloadavg()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def timed_run(cmd: list[str], log_path: Path, *, env=None, timeout: float = 1800.0) -> dict:
    """Run cmd (stdout and stderr merged), timestamp every line on arrival, keep them in log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    timer = threading.Timer(timeout, _kill_group, args=(proc,))
    timer.start()
    # A line is stamped when its last visible byte arrived, not its newline: pytest -v
    # writes "PASSED" and only ends the line when it next prints (after the VM shut down).
    pending, pending_at = b"", None
    now = 0.0
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            now = time.monotonic() - started
            parts = chunk.split(b"\n")
            for i, part in enumerate(parts):
                if part.strip():
                    pending_at = now
                pending += part
                if i < len(parts) - 1:  # a newline followed this part
                    lines.append(
                        (now if pending_at is None else pending_at, pending.decode(errors="replace"))
                    )
                    pending, pending_at = b"", None
        if pending:
            lines.append((now if pending_at is None else pending_at, pending.decode(errors="replace")))
        rc = proc.wait()
    except BaseException:
        _kill_group(proc)  # Ctrl-C on the bench takes its VMs with it
        raise
    finally:
        timer.cancel()
    wall = time.monotonic() - started
    with open(log_path, "w") as f:
        f.write(f"# {' '.join(cmd)}\n")
        for t, line in lines:
            f.write(f"{t:9.3f} {line}\n")
    return {"cmd": cmd, "wall": round(wall, 2), "rc": rc, "lines": lines, "log": str(log_path)}


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def rounded(x):
    return None if x is None else round(x, 3 if abs(x) < 1 else 2)


class Bench:
    """One benchmark run: its measurements (by label), result rows, breakdowns and notes."""

    def __init__(self, out: Path, quick: bool, quiet_limit: float, boot_kernel: str = "6.1"):
        self.out = out
        self.boot_kernel = boot_kernel  # B1 and B2 boot this one
        self.quick = quick
        self.quiet_limit = quiet_limit
        self.home = tempfile.mkdtemp(prefix="bench-vng-home-")
        self.kvm = accel.choose().name == "kvm"  # as the harness's --accel auto decides
        self.measurements: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.breakdown: dict = {}
        self.notes: list[str] = []

    def log(self, text: str) -> None:
        print(text, flush=True)

    def measure(self, label: str, cmd: list[str], *, env: dict[str, str]) -> dict:
        """One run of cmd, after waiting for a quiet machine; kept under label."""
        # Host-only runs wait too: other sessions' VMs eat the same two cores.
        quiet = wait_quiet(self.quiet_limit, log=self.log)
        self.log(f"{label}: {' '.join(cmd)}")
        watch = Watch()
        try:
            r = timed_run(cmd, self.out / "logs" / f"{label}.log", env=env)
        finally:
            watch.stop()
        # Quiet at the start proves little: another session may boot a VM mid-run.
        r["max_qemu_during"] = watch.max_qemu
        r["peak_load_during"] = round(watch.peak_load, 2)
        r["load_before"] = quiet["load"]
        r["load_after"] = [round(x, 2) for x in os.getloadavg()]
        r["quiet"] = quiet["quiet"]
        r["waited_for_quiet"] = quiet["waited"]
        r["summary"] = logs.pytest_summary(r["lines"])
        self.log(
            f"  {r['wall']:.1f} s, exit {r['rc']}, load {r['load_before'][0]:.2f}, at most "
            f"{r['max_qemu_during']} QEMU during the run: {r['summary']}"
        )
        self.measurements[label] = r
        return r

    def host(self, label: str, cmd: list[str]) -> dict:
        """A command that boots nothing, in the caller's environment."""
        return self.measure(label, cmd, env=dict(os.environ))

    def harness_pytest(self, label: str, args: list[str]) -> dict:
        results = self.out / "runs" / label
        cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--results-dir", str(results), *args]
        # The harness gives vng its own HOME; ours must stay, as the kernel cache is per user.
        r = self.measure(label, cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        r["console_logs"] = sorted(str(p) for p in (results / "vm-logs").glob("*.console.log"))
        return r

    def vng(self, label: str, image: Path, script: list[str], **options) -> dict:
        """vng running ``script`` in a guest of ``image``, with the harness's own command line.

        ``options`` go to ``harness.vm.vng.command``; only the B1x experiments
        pass any, to show what the harness's choices save over a bare vng.
        """
        options.setdefault("cached", pagecache.dirs(image))  # the same devices as the harness's VM
        cmd = vng.command(image, REPO, shlex.join(script), kvm=self.kvm, **options)
        env = vng.environment(self.home, cmd[0])
        env["PYTHONUNBUFFERED"] = "1"  # line timestamps mean when the line was printed
        return self.measure(label, cmd, env=env)

    def row(
        self,
        bench: str,
        what: str,
        value: float | None,
        unit: str,
        *,
        baseline=None,
        baseline_what: str = "",
        ratio=None,
        target: str = "",
        met=None,
        n: int = 1,
        labels: tuple[str, ...] = (),
    ) -> None:
        kept = [self.measurements[lab] for lab in labels if lab in self.measurements]
        self.rows.append(
            {
                "bench": bench,
                "what": what,
                "value": rounded(value),
                "unit": unit,
                "baseline": rounded(baseline),
                "baseline_what": baseline_what,
                "ratio": rounded(ratio),
                "target": target,
                "met": met,
                "n": n,
                "load_1min": [m["load_before"][0] for m in kept],
                "load_1min_after": [m.get("load_after", [None])[0] for m in kept],
                "max_qemu_during": [m.get("max_qemu_during") for m in kept],
                "all_quiet": all(m["quiet"] is not False for m in kept),
            }
        )

    def report(self, machine: dict) -> dict:
        measurements = {
            k: {kk: vv for kk, vv in v.items() if kk != "lines"} for k, v in self.measurements.items()
        }
        return {
            "schema": 1,
            "mode": "quick" if self.quick else "full",
            "machine": machine,
            "rows": self.rows,
            "breakdown": self.breakdown,
            "notes": self.notes,
            "measurements": measurements,
        }


def collect_ids(kernel: str, path: str) -> list[str]:
    """The test ids ``pytest --collect-only --kernel kernel path`` lists (no VM boots)."""
    cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "--kernel", kernel, path]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    if not ids:
        raise RuntimeError(f"collecting {path} with --kernel {kernel} found nothing:\n{r.stdout}{r.stderr}")
    return ids
