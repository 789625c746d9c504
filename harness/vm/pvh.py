"""pvh: the uncompressed vmlinux of a bzImage, for QEMU to boot through its PVH entry.

A bzImage decompresses itself before the kernel starts: 1 to 2.5 s of every
boot under TCG. Debian's kernels (CONFIG_PVH=y) carry the PVH ELF note, so
QEMU can start the ELF vmlinux directly. vng still reads the bzImage (version,
modules); ``vng.command(..., pvh=ELF)`` adds ``--qemu-opts -kernel ELF``, which
vng appends last, and QEMU keeps the last ``-kernel``.

    elf = pvh.vmlinux(image)   # cached ELF path, or None (no PVH note, not a bzImage)

The ELF is extracted once per image (by its sha256), written atomically into
the user cache's ``vmlinux/``; about 65 MB for Debian's 6.1. One unused for\n``UNUSED_DAYS`` is removed.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import platformdirs

from harness.bpf.compile import CompileError, atomic_write, elf_from_bzimage

XEN_ELFNOTE_PHYS32_ENTRY = 18  # include/xen/interface/elfnote.h: the PVH entry point
PT_NOTE = 4


def has_pvh_note(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF has a Xen PHYS32_ENTRY note (what QEMU's PVH boot needs)."""
    if elf[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_NOTE:
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", elf, at)
            name = elf[at + 12 : at + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


UNUSED_DAYS = 14  # an ELF no boot used this long is removed when another is extracted


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("bpf-vm-harness")) / "vmlinux"


def vmlinux(image: Path) -> Path | None:
    """The PVH-bootable ELF of image, extracted once and cached; None when image cannot boot that way."""
    try:
        data = image.read_bytes()
    except OSError:
        return None  # vng says what is wrong with the image
    digest = hashlib.sha256(data).hexdigest()
    target = cache_dir() / f"{digest}.elf"
    none = target.with_suffix(".none")  # remembered: this image has no PVH entry
    if target.exists():
        os.utime(target)  # in use: kept by the clean-up below
        return target
    if none.exists():
        return None
    try:
        elf = elf_from_bzimage(data)
    except CompileError:
        elf = b""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_unused(target.parent)
    if not has_pvh_note(elf):
        none.touch()
        return None
    atomic_write(target, elf)
    return target


def _remove_unused(directory: Path) -> None:
    cutoff = time.time() - UNUSED_DAYS * 86400
    for old in directory.glob("*.elf"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass  # another process removed it first
