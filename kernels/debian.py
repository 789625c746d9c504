"""Fetch a pinned Debian kernel from the archive, without the host's apt: signed index, Packages entry, pin.

For each .deb of a catalog entry: the suite's InRelease must verify and
list the Packages index (kernels/archive.py); the Packages stanza for the
pinned package and version must agree with the catalog's filename, sha256
and size; the downloaded file must have that sha256 and size. Any mismatch
discards the file and says which link of the chain broke.

A pin the suite no longer carries (sid and the backports drop old versions)
is fetched from Debian's snapshot archive (kernels/snapshot.py), checked
against the pin's sha256 and size alone: the pin was read from the signed
index when the build was current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import aptsources, archive, http, snapshot
from .cache import default_root
from .catalog import CatalogEntry, DebPin, load_catalog, resolve_spec
from .errors import ArchiveUnreachable, KernelError
from .source import Downloaded

REFRESH = "python ci/update_catalog.py --write"


class DebianSource:
    def __init__(
        self,
        mirror: str | None = None,
        *,
        keyring: str | None = None,
        cache_root: Path | None = None,
        snapshot_mirror: str | None = None,
    ):
        self.mirror = mirror
        self.keyring = keyring
        self.cache_root = cache_root
        self.snapshot_mirror = snapshot_mirror

    def download(self, entry: CatalogEntry, dest: Path, *, progress: bool) -> Downloaded:
        assert entry.suite is not None, "the catalog loader requires a suite for Debian entries"
        dest.mkdir(parents=True, exist_ok=True)
        urls = aptsources.for_suite(entry.suite, aptsources.bases(self.mirror))
        missing = ""
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
        except archive.SuiteMissing as e:
            index, missing = None, str(e)  # a suite Debian has retired: every pin from the snapshot archive
        s = http.session()
        debs, sums, snapped = [], {}, []
        for pin in entry.debs:
            if index is None or index.find(pin.package, pin.version) is None:
                gone = f"kernel {entry.name}: " + (
                    missing if index is None else _not_carried(entry, pin, index)
                )
                target = self._from_snapshot(entry, pin, gone, dest, progress)
                snapped.append(target.name)
                how = "the catalog pin (from the snapshot archive)"
            else:
                _check_pin(entry, pin, index)
                target = dest / Path(pin.filename).name
                http.download(
                    s,
                    f"{index.base}/{pin.filename}",
                    target,
                    sha256=pin.sha256,
                    size=pin.size,
                    progress=progress,
                )
                how = "the signed index and the catalog pin"
            if progress:
                print(f"verified {target.name}: sha256 and size match {how}", file=sys.stderr, flush=True)
            debs.append(target)
            sums[target.name] = pin.sha256
        origin = f"{index.base} {entry.suite}" if index else ""
        if snapped:
            origin += f"{'; ' if origin else ''}from the snapshot archive {self._snapshot_base()}: {', '.join(snapped)}"
        return Downloaded(debs, sums, origin)

    def _snapshot_base(self) -> str:
        return load_catalog().url("snapshot", self.snapshot_mirror)

    def _from_snapshot(self, entry: CatalogEntry, pin: DebPin, gone: str, dest: Path, progress: bool) -> Path:
        """The pin from the snapshot archive, or a KernelError that starts with gone (why the archive did not do)."""
        base = self._snapshot_base()
        if progress:
            print(f"{gone}; looking it up in the snapshot archive {base}", file=sys.stderr, flush=True)
        try:
            return snapshot.fetch(base, pin, dest, progress=progress)
        except ArchiveUnreachable as e:
            why = f"and the snapshot archive {base} is unreachable ({e})"
        except snapshot.NotInSnapshot as e:
            why = f"and the snapshot archive {base} {e}"
        except KernelError as e:
            why = f"and fetching it from the snapshot archive {base} failed: {e}"
        raise KernelError(f"{gone}, {why}. {_advice(entry)}") from None


def _not_carried(entry: CatalogEntry, pin: DebPin, index: archive.SuiteIndex) -> str:
    carried = ", ".join(s["Version"] for s in index.packages.get(pin.package, [])) or "no version"
    return (
        f"{entry.suite} at {index.base} no longer carries {pin.package} {pin.version} "
        f"(it has {carried}; sid and the backports drop old versions)"
    )


def _advice(entry: CatalogEntry) -> str:
    try:
        newest = resolve_spec(entry.series)
        now = f" (now {newest.name})" if isinstance(newest, CatalogEntry) else ""
    except KernelError:
        now = ""
    return (
        f"To get this exact build, set {snapshot.MIRROR_ENV} to a reachable snapshot archive "
        f"(the API under /mr/ and files under /file/). Otherwise refresh the catalog with `{REFRESH}` "
        f"and use a build the archive carries: --kernel {entry.series} is the newest of the series{now}. "
        "A copy already in the kernel cache boots without any archive"
    )


def _check_pin(entry: CatalogEntry, pin: DebPin, index: archive.SuiteIndex) -> None:
    stanza = index.find(pin.package, pin.version)
    assert stanza is not None, "the caller fetches pins the suite no longer carries from the snapshot archive"
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
