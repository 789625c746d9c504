"""Host directories the guest reads through 9p's page cache.

vng shares the host's root over 9p without a cache: every path lookup, and
every page of a library or program mapped from it, is a round trip to QEMU,
about 0.7 ms under TCG. Each exec of /bin/true cost 0.2 s, a Python child 3.5 s,
and bcc's compile, which opens hundreds of kernel headers and maps LLVM, 23 s of
a case. Three trees do not change while a VM lives, so the guest reads them
through a second 9p share each, mounted with ``cache=loose`` (pages and lookups
are kept after the first read):

- ``/usr``: system libraries and programs, bcc, clang, Debian's Python. It goes
  under a writable overlay, as vng's own ``/usr`` is, and the guest kernel's
  ``/lib/modules/<release>`` link is made again on top of it;
- the interpreter's installation (``sys.base_prefix``), when it is not under
  ``/usr`` (pyenv, a built Python);
- the kernel's entry in the harness's cache (modules and headers);
- the directory of the byte-compiled modules (``harness.vm.pyzip``), whose names change with
  their content.

The shares are read-only on the host side. The project, the virtualenv and
everything else stay on vng's uncached root, so a test edited between two runs
in one warm VM is read afresh. A warm VM keeps what it cached, so its settings
key carries ``stamp()``: what changes when one of these trees does.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

USR = Path("/usr")
_QEMU_SAFE = re.compile(r"[\w./+-]+")  # vng hands --qemu-opts to a shell, QEMU splits options at commas


def tag(index: int) -> str:
    return f"harnesscache{index}"  # pagecache.sh names them the same way


def kernel_entry(image: Path) -> Path | None:
    """The harness cache entry ``image`` boots from (<entry>/boot/vmlinuz-*), or None for any other image."""
    entry = image.parent.parent
    if (
        image.parent.name == "boot"
        and (entry / "meta.json").is_file()
        and (entry / "lib" / "modules").is_dir()
    ):
        return entry
    return None


def dirs(image: Path, modules: Sequence[Path] = ()) -> tuple[Path, ...]:
    """The directories to cache for a VM booting ``image`` and importing from ``modules``, /usr
    first; those QEMU's options cannot name are left out."""
    found = [USR]
    prefix = Path(sys.base_prefix).resolve()
    if not prefix.is_relative_to(USR) and prefix != Path("/"):
        found.append(prefix)
    entry = kernel_entry(image)
    if entry is not None:
        found.append(entry)
    for path in modules:  # named by their content (harness.vm.pyzip): never rewritten
        if path.parent not in found:
            found.append(path.parent)
    return tuple(d for d in found if d.is_dir() and _QEMU_SAFE.fullmatch(str(d)))


def qemu_options(cached: Sequence[Path]) -> list[str]:
    """vng arguments that export each directory read-only as its own 9p share."""
    return [
        f"--qemu-opts=-fsdev local,id={tag(i)},path={d},security_model=none,readonly=on,multidevs=remap"
        f" -device virtio-9p-pci,fsdev={tag(i)},mount_tag={tag(i)}"
        for i, d in enumerate(cached)
    ]


GUEST_SCRIPT = Path(__file__).with_name("pagecache.sh")


def guest_command(cached: Sequence[Path]) -> str:
    """The shell command that mounts each share over its directory (``pagecache.sh``)."""
    if not cached:
        return ""
    shell = ["busybox", "sh"] if shutil.which("busybox") else ["sh"]  # the guest's root is the host's
    return shlex.join([*shell, str(GUEST_SCRIPT), *map(str, cached)]) + "; "


def mtime(path: Path) -> str:
    """path:mtime_ns, or path:- if it is missing (a stamp for a settings key)."""
    try:
        return f"{path}:{path.stat().st_mtime_ns}"
    except OSError:
        return f"{path}:-"


def stamp(image: Path) -> list[str]:
    """What changes when a cached tree does: dpkg's status (/usr), the interpreter, the kernel's
    modules directories (bcc's headers are linked in there when first fetched)."""
    found = [mtime(Path("/var/lib/dpkg/status")), mtime(Path(sys.executable).resolve())]
    entry = kernel_entry(image)
    if entry is not None:
        found += [mtime(p) for p in sorted((entry / "lib" / "modules").iterdir())]
    return found
