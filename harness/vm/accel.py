"""Choosing between KVM and TCG: only a KVM that can really run a guest counts.

``/dev/kvm`` existing is not enough: on hosts with nested paging emulation
(``kvm_pvm``) it opens fine but a stock kernel hangs at boot. We require the
device to be openable read-write AND the CPU to advertise vmx or svm.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

CHOICES = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def detect(dev: str = "/dev/kvm", cpuinfo: str = "/proc/cpuinfo") -> Accel:
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        hint = (
            " (for KVM, join its group: sudo usermod -aG kvm $USER, then log in again)"
            if exc.errno == errno.EACCES
            else ""
        )
        return Accel("tcg", f"{dev} is not usable ({exc.strerror}){hint}")
    os.close(fd)
    try:
        with open(cpuinfo) as f:
            flags = _cpu_flags(f.read())
    except OSError as exc:
        return Accel("tcg", f"cannot read {cpuinfo} ({exc.strerror})")
    if not flags & {"vmx", "svm"}:
        return Accel("tcg", f"{dev} opens but the CPU has neither vmx nor svm")
    return Accel("kvm", f"{dev} is usable and the CPU has {'vmx' if 'vmx' in flags else 'svm'}")


def choose(requested: str = "auto") -> Accel:
    """``requested`` is the --accel option; HARNESS_ACCEL overrides 'auto'."""
    if requested == "auto":
        requested = os.environ.get("HARNESS_ACCEL", "auto")
    if requested not in CHOICES:
        raise ValueError(f"accelerator {requested!r} is not one of {', '.join(CHOICES)}")
    if requested == "auto":
        return detect()
    return Accel(requested, "forced")
