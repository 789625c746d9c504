"""The seam between the cache and the places kernels come from: one Protocol, one class per archive.

A source turns a catalog entry into verified package files in a directory;
the cache extracts them. Implementations: debian.DebianSource (a Debian
archive, checked against its signed indexes), mainline.MainlineSource (Ubuntu's mainline builds or a mirror);
DebianSource falls back to snapshot.py for a pin the archive no longer carries.
Local images and built trees (local.py, build.py) are used in place and
never pass through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .catalog import CatalogEntry


@dataclass(frozen=True)
class Downloaded:
    """Package files ready to extract, in order, each already checked against
    a trusted sha256 (the catalog's, or the archive's CHECKSUMS)."""

    debs: list[Path]
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    origin: str = ""  # for humans: "<archive URL> <suite>", a mainline URL


class KernelSource(Protocol):
    def download(self, entry: CatalogEntry, dest: Path, *, progress: bool) -> Downloaded:
        """Put the entry's verified .deb files in dest (an empty directory) or raise KernelError."""
        ...
