"""Fetch an Ubuntu mainline kernel build (<archive>/vX.Y/amd64/) verified against the archive's CHECKSUMS file.

The archive's URL is the catalog's [sources] `mainline`, or $HARNESS_MAINLINE_MIRROR,
or --mainline-mirror.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import http
from .catalog import SOURCE_ENV, CatalogEntry, load_catalog
from .errors import ArchiveUnreachable, KernelError
from .source import Downloaded

MIRROR_ENV = SOURCE_ENV["mainline"]

_IMAGE = re.compile(r"^linux-image-unsigned-.*-generic_.*_amd64\.deb$")
_IMAGE_OLD = re.compile(r"^linux-image-\d.*-generic_.*_amd64\.deb$")  # before "-unsigned" existed
_MODULES = re.compile(r"^linux-modules-.*-generic_.*_amd64\.deb$")


def base_url(explicit: str | None = None) -> str:
    return load_catalog().url("mainline", explicit)


def parse_checksums(text: str) -> dict[str, str]:
    """The "# Checksums-Sha256:" section of a mainline CHECKSUMS file: name -> sha256.

    The file also has a Sha1 section first; lines look like "<hex>  <name>".
    """
    out: dict[str, str] = {}
    in_section = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            in_section = line.lower().startswith("# checksums-sha256")
            continue
        if in_section and line:
            parts = line.split()
            if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
                out[parts[1]] = parts[0].lower()
    return out


def pick(checksums: dict[str, str]) -> list[str]:
    """Names of the generic amd64 image deb and, if listed, its modules deb (image first)."""

    def matching(rx):
        return sorted(
            n
            for n in checksums
            if rx.match(n.rsplit("/", 1)[-1])
            and n.count("/") <= 1
            and (n.count("/") == 0 or n.startswith("amd64/"))
        )

    images = matching(_IMAGE) or matching(_IMAGE_OLD)
    if not images:
        return []
    return [images[-1], *matching(_MODULES)[-1:]]


class MainlineSource:
    def __init__(self, base: str | None = None):
        self.base = base_url(base)

    def checksums(self, tag: str, s) -> tuple[str, dict[str, str]]:
        """Find the CHECKSUMS file (newer builds: <tag>/amd64/, older: <tag>/) and parse it."""
        for sub in (f"{tag}/amd64/", f"{tag}/"):
            url = self.base + sub + "CHECKSUMS"
            try:
                text = http.get_text(s, url)
            except http.NotFound:
                continue
            except ArchiveUnreachable as e:
                raise ArchiveUnreachable(
                    f"the Ubuntu mainline archive {self.base} is unreachable ({e}); set "
                    f"{MIRROR_ENV} to a reachable mirror"
                ) from None
            sums = parse_checksums(text)
            if not sums:
                raise KernelError(f"{url} has no '# Checksums-Sha256:' section; the mirror may be broken")
            return self.base + sub, sums
        raise KernelError(
            f"the Ubuntu mainline archive {self.base} has no {tag} build (no {tag}/amd64/CHECKSUMS "
            f"or {tag}/CHECKSUMS); check the tag in kernels/catalog.toml against {self.base}"
        )

    def download(self, entry: CatalogEntry, dest: Path, *, progress: bool) -> Downloaded:
        assert entry.tag is not None, "the catalog loader requires a tag for mainline entries"
        dest.mkdir(parents=True, exist_ok=True)
        s = http.session()
        where, sums = self.checksums(entry.tag, s)
        names = pick(sums)
        if not names:
            raise KernelError(
                f"{where}CHECKSUMS lists no linux-image-unsigned-*-generic_*_amd64.deb; the amd64 "
                f"build of {entry.tag} may have failed upstream. Pick another kernel"
            )
        debs = []
        for name in names:
            target = dest / name.rsplit("/", 1)[-1]
            try:
                http.download(s, where + name, target, sha256=sums[name], progress=progress)
            except ArchiveUnreachable as e:
                raise ArchiveUnreachable(
                    f"the Ubuntu mainline archive {self.base} is unreachable ({e})"
                ) from None
            debs.append(target)
        return Downloaded(debs, {d.name: sums[n] for d, n in zip(debs, names, strict=True)}, where)
