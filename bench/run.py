"""Benchmarks of the harness (B1-B5) against their floors; writes a Markdown and a JSON table.

    .venv/bin/python bench/run.py [--quick] [--out bench/results] [--only B4,B5]

B1 boot: one trivial test through ``pytest --kernel 6.1`` against the bare
``vng --disable-kvm -r IMAGE -m 1G -p 2 -- true``. B2 per-test overhead: 200
trivial tests in one VM against the same bodies in a plain loop in a guest.
B3 suite: cases/ on two kernels with ``-n 2`` against the sequential vng loop
a user would write and against a VM per test (extrapolated from a sample).
B4 cache: resolving and verifying a cached kernel, with the network cut off.
B5 floor: cases/ natively on the host kernel.

Other sessions share the machine: every VM measurement first waits for no
QEMU to run and a 1-minute load average below 1.0, and records the load.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `harness` and `bench` from the checkout

PYTHON = sys.executable
BIN = Path(sys.executable).parent
UNREACHABLE = "http://127.0.0.1:9/"  # discard port: nothing listens, a fetch fails at once
QUIET_LOAD = 1.0
# Loaded by udev coldplug for emulated q35 devices; none is needed for bpf() tests.
# Used only by the "experiment" rows that show what blacklisting them saves.
NEEDLESS_MODULES = (
    "kvm_amd,kvm_intel,kvm,ahci,libahci,libata,sr_mod,cdrom,sg,scsi_mod,"
    "i2c_i801,i2c_smbus,lpc_ich,iTCO_wdt,iTCO_vendor_support,pcspkr,"
    "aesni_intel,ghash_clmulni_intel,cryptd,powernow_k8,serio_raw,evdev,"
    "joydev,intel_rapl_msr,intel_rapl_common,crc32_pclmul,crc32c_intel"
)

# Markers of the guest's boot in a console log, in boot order: (key, text in the line).
CONSOLE_MARKS = (
    ("kernel_start", "Linux version"),
    ("init", "Run /init as init process"),
    ("real_root", "virtme initramfs: done; switching to real root"),
    ("tmpfiles", "virtme-ng-init: running systemd-tmpfiles"),
    ("basic_init_done", "virtme-ng-init: basic initialization done"),
    ("udevd", "virtme-ng-init: Starting systemd-udevd"),
    ("coldplug", "virtme-ng-init: triggering udev coldplug"),
    ("settle", "virtme-ng-init: waiting for udev to settle"),
    ("udev_done", "virtme-ng-init: udev is done"),
    ("script", "virtme-ng-init: starting script"),
    ("power_down", "reboot: Power down"),
)
_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")


# -- measuring ---------------------------------------------------------------


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


def vng_env(home: str) -> dict[str, str]:
    """vng calls virtme-run through a shell (venv bin on PATH); a private HOME keeps user config out."""
    env = dict(os.environ)
    env["HOME"] = home
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # line timestamps below mean when the line was printed
    return env


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
    timer = threading.Timer(timeout, _kill_group, args=(proc,))
    timer.start()
    # A line is stamped when its last visible byte arrived, not its newline: pytest -v
    # writes "PASSED" and only ends the line when it next prints (after the VM shut down).
    pending, pending_at = b"", None
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


def first_time(lines: list[tuple[float, str]], pattern: str) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, line in lines if rx.search(line)), None)


def pytest_summary(lines: list[tuple[float, str]]) -> str:
    """pytest's last line ('79 passed, 2 skipped in 3.1s'), without the decoration."""
    for _, line in reversed(lines):
        if re.search(r"\d+ (passed|failed|error|skipped|deselected)", line):
            return line.strip("= ").strip()
    return "(no pytest summary)"


def summary_counts(summary: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary.split(" in ")[0])}


def console_marks(text: str) -> dict[str, float]:
    """Guest kernel timestamps (seconds since kernel start) of the boot markers in a console log."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        # vng's own lines may precede the stamp on the same console line
        m = _STAMP.search(line[line.find("[") :]) if "[" in line else None
        if not m:
            continue
        for key, needle in CONSOLE_MARKS:
            if key not in found and needle in line:
                found[key] = float(m.group(1))
    return found


def boot_phases(marks: dict[str, float]) -> dict[str, float]:
    """Durations between consecutive markers: where the guest's boot time goes."""

    def span(a: str, b: str) -> float | None:
        return round(marks[b] - marks[a], 2) if a in marks and b in marks else None

    phases = {
        "kernel to init": span("kernel_start", "init"),
        "initramfs (modules, 9p mount)": span("init", "real_root"),
        "virtme-ng-init setup before tmpfiles": span("real_root", "tmpfiles"),
        "systemd-tmpfiles": span("tmpfiles", "basic_init_done"),
        "udevd start + coldplug trigger": span("basic_init_done", "settle"),
        "udev settle (module loads)": span("settle", "udev_done"),
        "udev done to script": span("udev_done", "script"),
    }
    return {k: v for k, v in phases.items() if v is not None}


# -- the benchmarks ------------------------------------------------------------


class Bench:
    def __init__(self, out: Path, quick: bool, quiet_limit: float, boot_kernel: str = "6.1"):
        self.out = out
        self.boot_kernel = boot_kernel  # B1 and B2 boot this one
        self.quick = quick
        self.quiet_limit = quiet_limit
        self.home = tempfile.mkdtemp(prefix="bench-vng-home-")
        self.measurements: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.breakdown: dict = {}
        self.notes: list[str] = []

    def log(self, text: str) -> None:
        print(text, flush=True)

    def measure(self, label: str, cmd: list[str], *, env=None) -> dict:
        """One run of cmd, after waiting for a quiet machine; kept under label."""
        # Host-only runs wait too: other sessions' VMs eat the same two cores.
        quiet = wait_quiet(self.quiet_limit, log=self.log)
        self.log(f"{label}: {' '.join(cmd)}")
        watch = Watch()
        try:
            r = timed_run(cmd, self.out / "logs" / f"{label}.log", env=env or vng_env(self.home))
        finally:
            watch.stop()
        # Quiet at the start proves little: another session may boot a VM mid-run.
        r["max_qemu_during"] = watch.max_qemu
        r["peak_load_during"] = round(watch.peak_load, 2)
        r["load_before"] = quiet["load"]
        r["load_after"] = [round(x, 2) for x in os.getloadavg()]
        r["quiet"] = quiet["quiet"]
        r["waited_for_quiet"] = quiet["waited"]
        r["summary"] = pytest_summary(r["lines"])
        self.log(
            f"  {r['wall']:.1f} s, exit {r['rc']}, load {r['load_before'][0]:.2f}, at most "
            f"{r['max_qemu_during']} QEMU during the run: {r['summary']}"
        )
        self.measurements[label] = r
        return r

    def harness_pytest(self, label: str, args: list[str]) -> dict:
        results = self.out / "runs" / label
        cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--results-dir", str(results), *args]
        # The harness gives vng its own HOME; ours must stay, as the kernel cache is per user.
        r = self.measure(label, cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        r["console_logs"] = sorted(str(p) for p in (results / "vm-logs").glob("*.console.log"))
        return r

    def vng(self, label: str, image: Path, script: list[str], *, extra: list[str] = ()) -> dict:
        cmd = [
            str(BIN / "vng"),
            "--disable-kvm",
            "-r",
            str(image),
            "-m",
            "1G",
            "-p",
            "2",
            "--cwd",
            str(REPO),
            *extra,
            "--",
            *script,
        ]
        return self.measure(label, cmd)

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
        loads = [self.measurements[lab]["load_before"][0] for lab in labels if lab in self.measurements]
        after = [
            self.measurements[lab].get("load_after", [None])[0] for lab in labels if lab in self.measurements
        ]
        qemus = [self.measurements[lab].get("max_qemu_during") for lab in labels if lab in self.measurements]
        quiet = [self.measurements[lab]["quiet"] for lab in labels if lab in self.measurements]
        self.rows.append(
            {
                "bench": bench,
                "what": what,
                "value": _round(value),
                "unit": unit,
                "baseline": _round(baseline),
                "baseline_what": baseline_what,
                "ratio": _round(ratio),
                "target": target,
                "met": met,
                "n": n,
                "load_1min": loads,
                "load_1min_after": after,
                "max_qemu_during": qemus,
                "all_quiet": all(q is not False for q in quiet),
            }
        )

    # B1 -----------------------------------------------------------------------

    def b1(self, image: Path) -> None:
        h = self.harness_pytest("b1-harness", ["--kernel", self.boot_kernel, "bench/case_one.py"])
        floor = self.vng("b1-vng-floor", image, ["true"])
        verbose = self.vng("b1-vng-floor-verbose", image, ["true"], extra=["--verbose"])
        ratio = h["wall"] / floor["wall"] if floor["rc"] == 0 else None
        self.row(
            "B1",
            f"boot + 1 trivial test, `pytest --kernel {self.boot_kernel}`",
            h["wall"],
            "s",
            baseline=floor["wall"],
            baseline_what="`vng --disable-kvm -r IMAGE -m 1G -p 2 -- true`",
            ratio=ratio,
            target="ratio <= 1.15",
            met=ratio is not None and ratio <= 1.15,
            labels=("b1-harness", "b1-vng-floor"),
        )
        self.breakdown["B1 harness"] = self._harness_breakdown(h)
        self.breakdown["B1 vng floor (--verbose)"] = self._vng_breakdown(verbose)

    def b1x(self, image: Path) -> None:
        """What two cheap launcher changes would save, on the bare floor (full runs only)."""
        floor = self.measurements.get("b1-vng-floor")
        verbose = self.measurements.get("b1-vng-floor-verbose")
        if self.quick or floor is None or verbose is None:
            return
        exp1 = self.vng("b1-exp-force-9p", image, ["true"], extra=["--force-9p"])
        exp2 = self.vng(
            "b1-exp-force-9p-blacklist",
            image,
            ["true"],
            extra=["--force-9p", "--verbose", "--append", f"modprobe.blacklist={NEEDLESS_MODULES}"],
        )
        self.row(
            "B1x",
            "experiment: floor with `--force-9p`",
            exp1["wall"],
            "s",
            baseline=floor["wall"],
            baseline_what="floor",
            ratio=exp1["wall"] / floor["wall"],
            labels=("b1-exp-force-9p",),
        )
        self.row(
            "B1x",
            "experiment: floor with `--force-9p` + `modprobe.blacklist=` (q35 device modules)",
            exp2["wall"],
            "s",
            baseline=verbose["wall"],
            baseline_what="floor with --verbose",
            ratio=exp2["wall"] / verbose["wall"],
            labels=("b1-exp-force-9p-blacklist",),
        )
        self.breakdown["B1x floor --force-9p + blacklist (--verbose)"] = self._vng_breakdown(exp2)

    def guest_startup(self, image: Path) -> None:
        """The guest's Python phases, timed inside the guest (bench/guest_startup.py)."""
        r = self.vng("guest-startup", image, [PYTHON, "-B", "bench/guest_startup.py"], extra=["--verbose"])
        found = re.search(r'\{"uptime_at_python".*\}', "\n".join(line for _, line in r["lines"]))
        marks = console_marks("\n".join(line for _, line in r["lines"]))
        out: dict = {"wall": r["wall"]}
        if found:
            data = json.loads(found.group(0))
            if "script" in marks:
                out["virtme 'starting script' to Python running (exec over 9p)"] = round(
                    data["uptime_at_python"] - marks["script"], 2
                )
            out["import pytest"] = round(data["import_pytest"], 2)
            out["pytest.main --collect-only, harness plugin autoloaded"] = round(
                data["pytest_main_collect_only"], 2
            )
        self.breakdown["guest Python start-up (bench/guest_startup.py)"] = out

    def _harness_breakdown(self, r: dict) -> dict:
        """Host timestamps of the harness's own lines plus the guest's console markers."""
        lines = r["lines"]
        booting = first_time(lines, r"bpf-harness: booting")
        up_line = next((line for _, line in lines if re.search(r" up in [\d.]+ s", line)), "")
        up = first_time(lines, r" up in [\d.]+ s")
        m = re.search(r"up in ([\d.]+) s.*guest uptime ([\d.]+) s", up_line)
        passed = first_time(lines, r"(PASSED|FAILED|ERROR)")
        summary = first_time(lines, r"=+ kernels =+")
        out: dict = {"wall": r["wall"]}
        if booting is not None:
            out["host pytest start-up, plugin, kernel resolve, collection (to 'booting')"] = round(booting, 2)
        if m:
            boot, uptime = float(m.group(1)), float(m.group(2))
            out["vng + QEMU + firmware before the kernel (boot - guest uptime)"] = round(boot - uptime, 2)
            marks = (
                console_marks(Path(r["console_logs"][0]).read_text(errors="replace"))
                if r.get("console_logs")
                else {}
            )
            out.update(boot_phases(marks))
            if "script" in marks:
                out["guest python + pytest start-up + collection (script to Ready)"] = round(
                    uptime - marks["script"], 2
                )
            out["boot to Ready, total (harness 'up in')"] = boot
            out["guest uptime at Ready"] = uptime
        if up is not None and passed is not None:
            out["the test (Ready to its result line)"] = round(passed - up, 2)
        if passed is not None and summary is not None:
            out["shutdown (result line to summary: Quit, power-off, reaping)"] = round(summary - passed, 2)
        if summary is not None:
            out["host pytest exit after summary"] = round(r["wall"] - summary, 2)
        return out

    def _vng_breakdown(self, r: dict) -> dict:
        lines = r["lines"]
        kernel = first_time(lines, r"Linux version")
        script = first_time(lines, r"virtme-ng-init: starting script")
        power = first_time(lines, r"reboot: Power down")
        text = "\n".join(line for _, line in lines)
        marks = console_marks(text)
        out: dict = {"wall": r["wall"]}
        waits = sum(1 for _, line in lines if "waiting for virtiofsd" in line)
        if waits:
            out["vng waits for virtiofsd (then falls back to 9p), polls"] = waits
        if kernel is not None:
            out["vng + QEMU + firmware before the kernel (host clock)"] = round(kernel, 2)
        out.update(boot_phases(marks))
        if "script" in marks:
            out["kernel start to script (guest clock)"] = marks["script"]
        if script is not None and kernel is not None:
            out["kernel start to script (host clock)"] = round(script - kernel, 2)
        if power is not None:
            out["power-down line to vng exit (host clock)"] = round(r["wall"] - power, 2)
        return out

    # B2 -----------------------------------------------------------------------

    def b2(self, image: Path) -> None:
        first = self._first_nodeid("bench/cases_trivial.py")
        all_ = self.harness_pytest("b2-harness-200", ["--kernel", self.boot_kernel, "bench/cases_trivial.py"])
        one = self.harness_pytest("b2-harness-1", ["--kernel", self.boot_kernel, first])
        loop = self.vng("b2-guest-loop", image, [PYTHON, "bench/guest_loop.py"])
        found = re.search(r'\{"tests".*\}', "\n".join(line for _, line in loop["lines"]))
        loop_ms = json.loads(found.group(0))["loop_seconds"] * 1000 / 200 if found else None
        diff_ms = (all_["wall"] - one["wall"]) * 1000 / 199
        # second method: gaps between consecutive result lines of the 200-test run
        stamps = [t for t, line in all_["lines"] if re.search(r"::test_trivial\[.*(PASSED|FAILED)", line)]
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        gap_ms = statistics.median(gaps) * 1000 if gaps else None
        per_test = gap_ms if gap_ms is not None else diff_ms
        overhead = per_test - (loop_ms or 0.0)
        self.row(
            "B2",
            "per-test time through the harness, median gap between result lines (200 tests)",
            gap_ms,
            "ms",
            baseline=loop_ms,
            baseline_what="same body, plain loop in a guest",
            target="overhead <= 10 ms",
            met=overhead <= 10.0,
            labels=("b2-harness-200", "b2-guest-loop"),
        )
        self.row(
            "B2",
            "per-test time, (wall 200 tests - wall 1 test) / 199",
            diff_ms,
            "ms",
            baseline=loop_ms,
            baseline_what="same body, plain loop in a guest",
            target="overhead <= 10 ms",
            met=diff_ms - (loop_ms or 0.0) <= 10.0,
            labels=("b2-harness-200", "b2-harness-1"),
        )
        self.breakdown["B2"] = {
            "wall 200 tests": all_["wall"],
            "wall 1 test": one["wall"],
            "result-line gaps: median ms": _round(gap_ms),
            "result-line gaps: p90 ms": _round(_pct(gaps, 0.9) * 1000 if gaps else None),
            "plain loop ms/test": _round(loop_ms),
        }

    def _first_nodeid(self, path: str) -> str:
        r = subprocess.run(
            [
                PYTHON,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--collect-only",
                "-q",
                "--kernel",
                self.boot_kernel,
                path,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        ids = [line for line in r.stdout.splitlines() if "::" in line]
        if not ids:
            raise RuntimeError(f"collecting {path} with --kernel 6.1 found nothing:\n{r.stdout}{r.stderr}")
        return ids[0]

    # B3 -----------------------------------------------------------------------

    def b3(self, images: dict[str, Path]) -> None:
        kernel_args = [a for k in images for a in ("--kernel", k)]
        n2 = self.harness_pytest("b3-harness-n2", [*kernel_args, "-n", "2", "cases/"])
        loops = self.b3_loops(images)
        loop_wall = sum(r["wall"] for r in loops)
        tests = sum(summary_counts(n2["summary"]).values())
        ratio = n2["wall"] / loop_wall
        kernels = " + ".join(images)
        self.row(
            "B3",
            f"cases/ on {kernels}, harness `-n 2` ({n2['summary']})",
            n2["wall"],
            "s",
            baseline=loop_wall,
            baseline_what="sequential `vng -r K -- python -m pytest cases/` per kernel ("
            + "; ".join(r["summary"] for r in loops)
            + ")",
            ratio=ratio,
            target="ratio <= 0.7",
            met=ratio <= 0.7,
            labels=("b3-harness-n2", *(f"b3-vng-loop-{k}" for k in images)),
        )
        first = next(iter(images))
        nodeids = self._sample_nodeids(first, 1 if self.quick else 3)
        singles = [
            self.harness_pytest(f"b3-vm-per-test-{i}", ["--kernel", first, nodeid])
            for i, nodeid in enumerate(nodeids)
        ]
        per_vm = statistics.mean(r["wall"] for r in singles)
        extrapolated = per_vm * tests
        speedup = extrapolated / n2["wall"]
        self.row(
            "B3",
            f"a VM per test: mean of {len(singles)} sampled runs x {tests} tests (extrapolated)",
            extrapolated,
            "s",
            baseline=n2["wall"],
            baseline_what="harness `-n 2`",
            ratio=speedup,
            target="harness >= 10x faster",
            met=speedup >= 10.0,
            n=len(singles),
            labels=tuple(f"b3-vm-per-test-{i}" for i in range(len(singles))),
        )
        if len(images) > 1:
            n1 = self.harness_pytest("b3-harness-n1", [*kernel_args, "-n", "1", "cases/"])
            self.row(
                "B3",
                f"cases/ on {kernels}, harness `-n 1` ({n1['summary']})",
                n1["wall"],
                "s",
                baseline=n2["wall"],
                baseline_what="harness `-n 2`",
                ratio=n1["wall"] / n2["wall"],
                target="-n 2 faster (ratio > 1)",
                met=n1["wall"] > n2["wall"],
                labels=("b3-harness-n1", "b3-harness-n2"),
            )
        self.breakdown["B3 harness -n 2"] = {
            "wall": n2["wall"],
            "VM boots (host lines)": [
                line.split("bpf-harness: ", 1)[-1] for _, line in n2["lines"] if " up in " in line
            ],
        }

    def b3_loops(self, images: dict[str, Path]) -> list[dict]:
        """The loop a user would write: one plain guest per kernel, one after the other.

        The guest's root is read-only and the harness plugin writes a results file at
        session start, so it is pointed at the guest's tmpfs /tmp (else: usage error, no tests).
        """
        loops = [
            self.vng(
                f"b3-vng-loop-{k}",
                image,
                [
                    PYTHON,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--results-dir",
                    "/tmp/bench-results",
                    "cases/",
                ],
            )
            for k, image in images.items()
        ]
        for k, r in zip(images, loops, strict=True):
            self.row(
                "B3",
                f"sequential loop, kernel {k}: `vng -r K -- python -m pytest cases/` ({r['summary']})",
                r["wall"],
                "s",
                labels=(f"b3-vng-loop-{k}",),
            )
        return loops

    def _sample_nodeids(self, kernel: str, count: int) -> list[str]:
        r = subprocess.run(
            [
                PYTHON,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--collect-only",
                "-q",
                "--kernel",
                kernel,
                "cases/",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        ids = [line for line in r.stdout.splitlines() if "::" in line]
        if not ids:
            raise RuntimeError(f"collecting cases/ found nothing:\n{r.stdout}{r.stderr}")
        # evenly spread over the suite, so the sample is not one module's fixtures
        return [ids[(i * len(ids)) // count + len(ids) // (2 * count)] for i in range(count)]

    # B4 -----------------------------------------------------------------------

    def b4(self) -> None:
        reps = 3 if self.quick else 7
        quiet = wait_quiet(self.quiet_limit, log=self.log)
        inproc = measure_resolve_in_process("6.12", reps)
        fresh = measure_resolve_fresh_process("6.12", reps, Path(self.home))
        for r in (inproc, fresh):
            r.update(load_before=quiet["load"], quiet=quiet["quiet"])
        self.measurements["b4-in-process"] = inproc
        self.measurements["b4-fresh-process"] = fresh
        self.row(
            "B4",
            "`resolve('6.12')` of a cached kernel, in-process, network cut off (median)",
            inproc["median"],
            "s",
            target="< 0.2 s",
            met=inproc["median"] < 0.2,
            n=reps,
            labels=("b4-in-process",),
        )
        self.row(
            "B4",
            "fresh process: import harness.kernels + resolve, mirrors unreachable, apt-get shimmed (median)",
            fresh["median"],
            "s",
            target="< 0.2 s",
            met=fresh["median"] < 0.2,
            n=reps,
            labels=("b4-fresh-process",),
        )
        self.row(
            "B4",
            "same fresh process, whole `python -c` wall clock incl. interpreter start (median)",
            fresh["median_wall"],
            "s",
            n=reps,
            labels=("b4-fresh-process",),
        )

    # B5 -----------------------------------------------------------------------

    def b5(self) -> None:
        reps = 1 if self.quick else 3
        runs = [
            self.measure(
                f"b5-host-{i}",
                [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "cases/"],
                env=dict(os.environ),
            )
            for i in range(reps)
        ]
        med = statistics.median(r["wall"] for r in runs)
        self.row(
            "B5",
            f"cases/ natively on the host kernel {platform.release()} ({runs[0]['summary']})",
            med,
            "s",
            n=reps,
            labels=tuple(f"b5-host-{i}" for i in range(reps)),
        )

    # host-side profile -----------------------------------------------------------

    def host_profile(self) -> None:
        """cProfile of the host pytest up to the point where it would boot (collect-only: no VM)."""
        prof = self.out / "host-collect.prof"
        cmd = [
            PYTHON,
            "-m",
            "cProfile",
            "-o",
            str(prof),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            "--kernel",
            self.boot_kernel,
            "bench/case_one.py",
        ]
        r = self.measure("host-profile-collect", cmd, env=dict(os.environ))
        self.breakdown["host pytest --collect-only --kernel 6.1 (cProfile)"] = {
            "wall (under cProfile)": r["wall"],
            "top cumulative": top_cumulative(prof, 12),
        }

    # report -------------------------------------------------------------------------

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


def _round(x):
    return None if x is None else round(x, 3 if abs(x) < 1 else 2)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- B4 pieces (no VM; tests/test_bench.py runs them) -------------------------------


class NetworkUsed(RuntimeError):
    """Resolving a cached kernel tried to reach the network or apt."""


@contextlib.contextmanager
def no_network():
    """Make any socket, and any apt-get/apt-cache subprocess, raise NetworkUsed."""
    real_socket, real_popen_init = socket.socket, subprocess.Popen.__init__

    class Refused(real_socket):
        def __init__(self, *a, **kw):
            raise NetworkUsed("a socket was opened")

    def popen_init(self, args, *a, **kw):
        argv = [args] if isinstance(args, (str, bytes)) else list(args)
        if argv and Path(str(argv[0])).name.startswith("apt"):
            raise NetworkUsed(f"apt was called: {argv}")
        real_popen_init(self, args, *a, **kw)

    socket.socket = Refused
    subprocess.Popen.__init__ = popen_init
    try:
        yield
    finally:
        socket.socket = real_socket
        subprocess.Popen.__init__ = real_popen_init


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


def top_cumulative(prof: Path, count: int) -> list[str]:
    import pstats  # noqa: PLC0415 - only for this report

    stats = pstats.Stats(str(prof))
    rows = []
    for (file, line, func), (_, _, _, cum, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][3]):
        if func.startswith("<") and func != "<module>":
            continue
        rows.append(f"{cum:6.2f} s  {Path(file).name}:{line} {func}")
        if len(rows) == count:
            break
    return rows


# -- machine and tables -------------------------------------------------------------


def machine_info() -> dict:
    from harness import kernels  # noqa: PLC0415
    from harness.vm import accel  # noqa: PLC0415

    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "?")
        except OSError:
            return "?"

    def out(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        except OSError:
            return "?"

    chosen = accel.choose()
    ks = {}
    for spec in ("6.1", "6.12"):
        try:
            k = kernels.resolve(spec, fetch=False, progress=False)
            ks[spec] = {"name": k.name, "release": k.release, "image": str(k.image)}
        except kernels.KernelError as exc:
            ks[spec] = {"error": str(exc)}
    dirty = out(["git", "status", "--porcelain", "--", "harness", "kernels", "cases", "bench"])
    return {
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "accel": chosen.name,
        "accel_reason": chosen.reason,
        "host_kernel": platform.release(),
        "python": platform.python_version(),
        "qemu": out(["qemu-system-x86_64", "--version"]),
        "vng": out([str(BIN / "vng"), "--version"]),
        "kernels": ks,
        "git_commit": out(["git", "rev-parse", "HEAD"]),
        "git_dirty": dirty != "?" and bool(dirty),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def render_markdown(report: dict) -> str:
    m = report["machine"]
    ks = ", ".join(
        f"{spec} = {k.get('name', '?')} ({k.get('release', k.get('error', '?'))})"
        for spec, k in m["kernels"].items()
    )
    lines = [
        f"# Benchmark results ({report['mode']})",
        "",
        f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory']} memory, "
        f"{m['accel'].upper()} ({m['accel_reason']}), host kernel {m['host_kernel']}",
        f"- kernels: {ks}",
        f"- {m['qemu']}; vng {m['vng']}; Python {m['python']}",
        f"- git {m['git_commit']}{' (dirty)' if m.get('git_dirty') else ''}, {m['date']}, "
        f"load at start {m['load_at_start']}",
        "",
        "| bench | what | value | baseline | ratio | target | met | N | 1-min load before (after) | QEMUs seen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        base = (
            f"{_fmt(r['baseline'])} {r['unit']} ({r['baseline_what']})" if r["baseline"] is not None else ""
        )
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        after = r.get("load_1min_after") or [None] * len(r["load_1min"])
        load = ", ".join(
            f"{b:.2f}" + ("" if a is None else f" ({a:.2f})")
            for b, a in zip(r["load_1min"], after, strict=False)
        ) + ("" if r["all_quiet"] else " (busy)")
        qemus = ", ".join("" if q is None else str(q) for q in r.get("max_qemu_during", []))
        lines.append(
            f"| {r['bench']} | {r['what']} | {_fmt(r['value'])} {r['unit']} | {base} | "
            f"{_fmt(r['ratio'])} | {r['target']} | {met} | {r['n']} | {load} | {qemus} |"
        )
    for title, parts in report["breakdown"].items():
        lines += ["", f"## {title}", ""]
        for k, v in parts.items():
            if isinstance(v, list):
                lines.append(f"- {k}:")
                lines += [f"    - `{x}`" for x in v]
            else:
                lines.append(f"- {k}: {_fmt(v)}")
    for note in report["notes"]:
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}" if abs(x) < 100 else f"{x:.1f}"
    return str(x)


def write(report: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "bench.md", out / "bench.json"
    md.write_text(render_markdown(report))
    js.write_text(json.dumps(report, indent=2) + "\n")
    return md, js


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, B3 on one kernel")
    ap.add_argument(
        "--kernel",
        default="6.1",
        metavar="SPEC",
        help="the kernel B1 and B2 boot (default 6.1; a built tree for the minimal kernel)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--only", default="B1,B2,B3,B4,B5,profile,B1x,startup", help="comma-separated subset")
    ap.add_argument(
        "--quiet-limit",
        type=float,
        default=1200.0,
        help="seconds to wait for a quiet machine before each VM measurement",
    )
    args = ap.parse_args(argv)
    from harness import kernels  # noqa: PLC0415

    only = {s.strip().lower() for s in args.only.split(",")}
    out = args.out.resolve()
    machine = machine_info()
    images = {
        spec: kernels.resolve(spec, fetch=False, progress=False).image
        for spec in (("6.1",) if args.quick else ("6.1", "6.12"))
    }
    boot_image = kernels.resolve(args.kernel, fetch=False, progress=False).image
    bench = Bench(out, args.quick, args.quiet_limit, args.kernel)
    steps = [
        ("b4", bench.b4),
        ("b5", bench.b5),
        ("profile", bench.host_profile),
        ("b1", lambda: bench.b1(boot_image)),
        ("b2", lambda: bench.b2(boot_image)),
        ("b3", lambda: bench.b3(images)),
        ("b3loop", lambda: bench.b3_loops(images)),
        ("b1x", lambda: bench.b1x(boot_image)),
        ("startup", lambda: bench.guest_startup(boot_image)),
    ]
    for name, step in steps:
        if name in only:
            step()
            write(bench.report(machine), out)  # a partial table survives a later failure
    md, js = write(bench.report(machine), out)
    print(md.read_text())
    print(f"written: {md} {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
