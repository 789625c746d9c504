"""Read the x86 boot header of a kernel image: is it a bzImage, and which release."""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import KernelError

# Offsets from the x86 boot protocol (Documentation/arch/x86/boot.rst).
_MAGIC_OFFSET = 0x202
_MAGIC = b"HdrS"
_VERSION_PTR_OFFSET = 0x20E
_SETUP_HEADER_BASE = 0x200
_HEADER_READ = 0x8000


def read_release(path: Path) -> str:
    """Return the `uname -r` string the image announces, e.g. "6.1.0-47-amd64".

    The setup header points at a NUL-terminated string such as
    "6.1.0-47-amd64 (debian-kernel@lists.debian.org) #1 SMP ..."; the
    release is its first word.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_READ)
    except OSError as e:
        raise KernelError(f"cannot read kernel image {path}: {e.strerror}") from None
    if head[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] != _MAGIC:
        raise KernelError(
            f"{path} is not a Linux kernel image (no bzImage header: expected "
            f'"HdrS" at offset 0x202); pass a bzImage/vmlinuz file, a built '
            "kernel tree, or a kernel name from the catalog"
        )
    (ptr,) = struct.unpack_from("<H", head, _VERSION_PTR_OFFSET)
    start = _SETUP_HEADER_BASE + ptr
    if ptr == 0 or start >= len(head):
        raise KernelError(
            f"{path} has a bzImage header but no kernel version string; "
            "it may be truncated or not an x86 kernel"
        )
    end = head.find(b"\0", start)
    text = head[start : end if end != -1 else len(head)].decode("ascii", "replace")
    release = text.split()[0] if text.split() else ""
    if not release:
        raise KernelError(f"{path} has an empty kernel version string")
    return release
