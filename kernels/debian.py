"""Fetch a pinned Debian kernel from the archive, without the host's apt: signed index, Packages entry, pin.

For each .deb of a catalog entry: the suite's InRelease must verify and
list the Packages index (kernels/archive.py); the Packages stanza for the
pinned package and version must agree with the catalog's filename, sha256
and size; the downloaded file must have that sha256 and size. Any mismatch
discards the file and says which link of the chain broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import aptsources, archive, http
from .cache import default_root
from .catalog import CatalogEntry, DebPin
from .errors import ArchiveUnreachable, KernelError
from .source import Downloaded

REFRESH = "python ci/update_catalog.py --write"


class DebianSource:
    def __init__(
        self, mirror: str | None = None, *, keyring: str | None = None, cache_root: Path | None = None
    ):
        self.mirror = mirror
        self.keyring = keyring
        self.cache_root = cache_root

    def download(self, entry: CatalogEntry, dest: Path, *, progress: bool) -> Downloaded:
        assert entry.suite is not None, "the catalog loader requires a suite for Debian entries"
        dest.mkdir(parents=True, exist_ok=True)
        urls = aptsources.for_suite(entry.suite, aptsources.bases(self.mirror))
        try:
            index = archive.SuiteIndex.load(
                entry.suite,
                urls,
                self.cache_root or default_root(),
                ring=archive.keyring(self.keyring),
                progress=progress,
            )
        except ArchiveUnreachable as e:
            raise ArchiveUnreachable(
                f"cannot fetch kernel {entry.name}: {e}; set {aptsources.MIRROR_ENV} or --debian-mirror "
                "to a reachable Debian archive"
            ) from None
        s = http.session()
        debs, sums = [], {}
        for pin in entry.debs:
            _check_pin(entry, pin, index)
            target = dest / Path(pin.filename).name
            http.download(
                s, f"{index.base}/{pin.filename}", target, sha256=pin.sha256, size=pin.size, progress=progress
            )
            if progress:
                print(
                    f"verified {target.name}: sha256 and size match the signed index and the catalog pin",
                    file=sys.stderr,
                    flush=True,
                )
            debs.append(target)
            sums[target.name] = pin.sha256
        return Downloaded(debs, sums, f"{index.base} {entry.suite}")


def _check_pin(entry: CatalogEntry, pin: DebPin, index: archive.SuiteIndex) -> None:
    stanza = index.find(pin.package, pin.version)
    if stanza is None:
        carried = ", ".join(s["Version"] for s in index.packages.get(pin.package, [])) or "no version"
        raise KernelError(
            f"kernel {entry.name}: {entry.suite} at {index.base} no longer carries {pin.package} "
            f"{pin.version} (it has {carried}; sid and the backports drop old versions). Refresh the "
            f"catalog with `{REFRESH}` and pick a kernel it lists (--kernel {entry.series} is the newest "
            "of the series); a copy already in the kernel cache still boots"
        )
    listed = {"filename": stanza["Filename"], "sha256": stanza["SHA256"], "size": int(stanza["Size"])}
    pinned = {"filename": pin.filename, "sha256": pin.sha256, "size": pin.size}
    if listed != pinned:
        diff = "; ".join(
            f"{k}: index {listed[k]}, catalog {pinned[k]}" for k in listed if listed[k] != pinned[k]
        )
        raise KernelError(
            f"kernel {entry.name}: the signed {entry.suite} index at {index.base} lists {pin.package} "
            f"{pin.version} differently from the catalog ({diff}); nothing was downloaded. If Debian "
            f"rebuilt the package, refresh the catalog with `{REFRESH}`"
        )
