"""Checks, before any VM starts, that the host has what virtme-ng and the cases need."""

from __future__ import annotations

import ctypes.util
import os
import shutil

# what is looked for -> (how to tell it is there, the Debian/Ubuntu package)
_UDEVD = ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd", "/sbin/udevd")
REQUIREMENTS = {
    "qemu-system-x86_64": (lambda: shutil.which("qemu-system-x86_64"), "qemu-system-x86"),
    # the guest runs the host's udevd to create virtme-ng's virtio ports;
    # without it the guest's output and exit status are silently lost
    "systemd-udevd": (lambda: any(os.path.exists(p) for p in _UDEVD), "udev"),
    "depmod": (lambda: shutil.which("depmod") or os.path.exists("/sbin/depmod"), "kmod"),
    "file": (lambda: shutil.which("file"), "file"),
    "libbpf.so.1": (lambda: ctypes.util.find_library("bpf"), "libbpf1"),
}


def missing() -> dict[str, str]:
    """Name -> package, for everything that is not there."""
    return {name: pkg for name, (present, pkg) in REQUIREMENTS.items() if not present()}


def message(absent: dict[str, str]) -> str:
    names = ", ".join(absent)
    pkgs = " ".join(sorted(set(absent.values())))
    return (
        f"this host lacks {names}, which VMs need.\n"
        f"Install them with: sudo apt-get install {pkgs}\n"
        "(or run ci/setup.sh, which installs everything the harness needs)"
    )
