"""Reading timed logs: pytest's summary line, when a line first appeared, the guest's boot markers.

The lines are ``(seconds since start, text)`` pairs from ``measure.timed_run``;
console logs carry the guest kernel's own timestamps, ``[   2.002638] ...``.
"""

from __future__ import annotations

import re

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


def first_time(lines: list[tuple[float, str]], pattern: str) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, line in lines if rx.search(line)), None)


def text(lines: list[tuple[float, str]]) -> str:
    return "\n".join(line for _, line in lines)


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


_GUEST_MARK = re.compile(r"harness-guest: (.+) at uptime ([\d.]+) s")


def guest_marks(text: str) -> dict[str, float]:
    """The guest agent's start-up steps (harness.guest.agent.mark): step -> guest uptime."""
    return {m.group(1): float(m.group(2)) for m in _GUEST_MARK.finditer(text)}


def cold_breakdown(console: str, wall: float) -> list[tuple[str, float]]:
    """Where a cold run's wall time goes, in order: the host and QEMU before the guest's
    clock starts, the boot up to vng's script, then the guest's Python and pytest."""
    marks, guest = console_marks(console), guest_marks(console)
    steps = [("kernel start", 0.0)]
    steps += [
        (key, marks[key]) for key in ("tmpfiles", "basic_init_done", "udev_done", "script") if key in marks
    ]
    steps += [(key, t) for key, t in guest.items()]
    out = []
    for (_, a), (name, b) in zip(steps, steps[1:], strict=False):
        out.append((f"to {name}", round(b - a, 2)))
    if guest:
        out.append(
            (
                "wall outside the guest's clock (host, QEMU, firmware, the last test, exit)",
                round(wall - max(guest.values()), 2),
            )
        )
    return out


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
