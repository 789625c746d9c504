"""Use a kernel the user already has: a bzImage/vmlinuz file or a built kernel tree, in place (no cache entry)."""

from __future__ import annotations

from .catalog import LocalSpec
from .kernel import Kernel, sha256_file


def kernel(spec: LocalSpec) -> Kernel:
    """The Kernel for a path; the checksum records exactly what was booted.

    A tree is handed to vng as <tree>/arch/x86/boot/bzImage: vng recognises
    that suffix and takes the modules and .config from the tree.
    """
    return Kernel(
        name=spec.release,
        release=spec.release,
        image=spec.image,
        source="build" if spec.kind == "tree" else "local",
        sha256=sha256_file(spec.image),
        package=None,
        origin=str(spec.path),
    )
