"""B1 boot: one trivial test through the harness against the same vng boot running ``true``.

The floor is the harness's own vng command line (``harness.vm.vng``) with
``true`` as the guest command, so the ratio is what the harness adds to a
boot: pytest on both sides, the guest agent, the protocol, the shutdown.
B1x (full runs only) boots vng without each of the harness's choices, to
show what each saves: a bare ``vng -r IMAGE -m 1G -p 2 -- true`` as a user
would type it, then the harness's line without ``--force-9p`` and without
the module blacklist. ``startup`` times the guest's Python phases from inside.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import logs
from bench.measure import PYTHON, Bench

FLOOR_WHAT = "the harness's vng command line (harness.vm.vng) running `true`"


def b1(bench: Bench, image: Path) -> None:
    h = bench.harness_pytest("b1-harness", ["--kernel", bench.boot_kernel, "bench/case_one.py"])
    floor = bench.vng("b1-vng-floor", image, ["true"])
    ratio = h["wall"] / floor["wall"] if floor["rc"] == 0 else None
    bench.row(
        "B1",
        f"boot + 1 trivial test, `pytest --kernel {bench.boot_kernel}`",
        h["wall"],
        "s",
        baseline=floor["wall"],
        baseline_what=FLOOR_WHAT,
        ratio=ratio,
        target="ratio <= 1.15",
        met=ratio is not None and ratio <= 1.15,
        labels=("b1-harness", "b1-vng-floor"),
    )
    bench.breakdown["B1 harness"] = harness_breakdown(h)
    bench.breakdown["B1 vng floor (--verbose)"] = vng_breakdown(floor)


# label, what the row says, options of harness.vm.vng.command
EXPERIMENTS = (
    (
        "b1x-bare-vng",
        "experiment: bare `vng -r IMAGE -m 1G -p 2 -- true` (no --verbose, --force-9p, module blacklist)",
        dict(verbose=False, force_9p=False, append=(), cached=()),
    ),
    ("b1x-without-force-9p", "experiment: floor without `--force-9p`", dict(force_9p=False)),
    (
        "b1x-without-blacklist",
        "experiment: floor without `modprobe.blacklist=` (q35 device modules)",
        dict(append=()),
    ),
)


def b1x(bench: Bench, image: Path) -> None:
    """What each of the harness's vng options saves, against the floor (full runs only)."""
    floor = bench.measurements.get("b1-vng-floor")
    if bench.quick or floor is None:
        return
    for label, what, options in EXPERIMENTS:
        r = bench.vng(label, image, ["true"], **options)
        bench.row(
            "B1x",
            what,
            r["wall"],
            "s",
            baseline=floor["wall"],
            baseline_what="floor",
            ratio=r["wall"] / floor["wall"],
            labels=(label,),
        )
        if options.get("verbose", True):
            bench.breakdown[f"B1x {label} (--verbose)"] = vng_breakdown(r)


def guest_startup(bench: Bench, image: Path) -> None:
    """The guest's Python phases, timed inside the guest (bench/guest_startup.py)."""
    r = bench.vng("guest-startup", image, [PYTHON, "-B", "bench/guest_startup.py"])
    found = re.search(r'\{"uptime_at_python".*\}', logs.text(r["lines"]))
    marks = logs.console_marks(logs.text(r["lines"]))
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
    bench.breakdown["guest Python start-up (bench/guest_startup.py)"] = out


def harness_breakdown(r: dict) -> dict:
    """Host timestamps of the harness's own lines plus the guest's console markers."""
    lines = r["lines"]
    booting = logs.first_time(lines, r"bpf-harness: booting")
    up_line = next((line for _, line in lines if re.search(r" up in [\d.]+ s", line)), "")
    up = logs.first_time(lines, r" up in [\d.]+ s")
    m = re.search(r"up in ([\d.]+) s.*guest uptime ([\d.]+) s", up_line)
    passed = logs.first_time(lines, r"(PASSED|FAILED|ERROR)")
    summary = logs.first_time(lines, r"=+ kernels =+")
    out: dict = {"wall": r["wall"]}
    if booting is not None:
        out["host pytest start-up, plugin, kernel resolve, collection (to 'booting')"] = round(booting, 2)
    if m:
        boot, uptime = float(m.group(1)), float(m.group(2))
        out["vng + QEMU + firmware before the kernel (boot - guest uptime)"] = round(boot - uptime, 2)
        marks = (
            logs.console_marks(Path(r["console_logs"][0]).read_text(errors="replace"))
            if r.get("console_logs")
            else {}
        )
        out.update(logs.boot_phases(marks))
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


def vng_breakdown(r: dict) -> dict:
    """Where a plain vng boot's time goes, from its --verbose console."""
    lines = r["lines"]
    kernel = logs.first_time(lines, r"Linux version")
    script = logs.first_time(lines, r"virtme-ng-init: starting script")
    power = logs.first_time(lines, r"reboot: Power down")
    marks = logs.console_marks(logs.text(lines))
    out: dict = {"wall": r["wall"]}
    waits = sum(1 for _, line in lines if "waiting for virtiofsd" in line)
    if waits:
        out["vng waits for virtiofsd (then falls back to 9p), polls"] = waits
    if kernel is not None:
        out["vng + QEMU + firmware before the kernel (host clock)"] = round(kernel, 2)
    out.update(logs.boot_phases(marks))
    if "script" in marks:
        out["kernel start to script (guest clock)"] = marks["script"]
    if script is not None and kernel is not None:
        out["kernel start to script (host clock)"] = round(script - kernel, 2)
    if power is not None:
        out["power-down line to vng exit (host clock)"] = round(r["wall"] - power, 2)
    return out
