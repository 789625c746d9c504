"""The Kernel record: everything the VM launcher needs to boot one kernel, and how to name it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel on local disk.

    name     what test ids show: the exact catalog name ("6.12.117-1", "6.8"), or
             for a path the release read from the image
    release  `uname -r` inside the guest, e.g. "6.1.0-47-amd64"
    image    the file to hand to `vng -r`; for a cached kernel it sits at
             <entry>/boot/vmlinuz-<release> next to <entry>/lib/modules/<release>,
             for a built tree it is <tree>/arch/x86/boot/bzImage
    source   "debian", "ubuntu-mainline", "local" or "build"
    sha256   of the image file
    package  the .deb the image came from, or None
    origin   for humans: "<archive URL> <suite>", a mainline URL, or the path given
    """

    name: str
    release: str
    image: Path
    source: str
    sha256: str
    package: str | None
    origin: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
