"""Fetch a pinned Debian kernel package: through the host's apt when it knows the package, else from an HTTP mirror."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from . import apt, http
from .catalog import CatalogEntry
from .errors import ArchiveUnreachable, KernelError
from .kernel import sha256_file
from .source import Downloaded

MIRROR_ENV = "HARNESS_DEBIAN_MIRROR"


def mirrors(explicit: str | None = None) -> list[str]:
    """Base URLs (the directory that holds pool/), in the order to try.

    Several may be given, separated by spaces or commas: files under
    pool/updates/ are only in the security archive, the rest in the main one.
    """
    value = explicit if explicit is not None else os.environ.get(MIRROR_ENV, "")
    return [m.rstrip("/") for m in re.split(r"[\s,]+", value) if m]


class DebianSource:
    kind = "debian"

    def __init__(self, mirror: str | None = None, *, use_apt: bool = True):
        self.mirrors = mirrors(mirror)
        self.use_apt = use_apt

    def download(self, entry: CatalogEntry, dest: Path, *, progress: bool) -> Downloaded:
        dest.mkdir(parents=True, exist_ok=True)
        pin = (entry.package, entry.package_version)
        apt_error = None
        if self.use_apt and pin in apt.known([pin]):
            try:
                deb, origin = self._apt_get(entry, dest, progress)
            except KernelError as e:
                if not self.mirrors:
                    raise
                apt_error = e
                if progress:
                    print(f"{e}\ntrying the mirror(s) in {MIRROR_ENV}", file=sys.stderr)
            else:
                return self._verified(entry, deb, origin)
        if not self.mirrors:
            raise KernelError(
                f"cannot fetch kernel {entry.name} ({entry.package}={entry.package_version}): this "
                f"host's apt does not list that package and no Debian mirror is configured; set "
                f"{MIRROR_ENV} to the base URL of a Debian archive (the directory that holds pool/; "
                "add the security archive too for pool/updates/ files) or pass --debian-mirror"
            )
        deb, origin = self._http(entry, dest, progress, apt_error)
        return self._verified(entry, deb, origin)

    def _apt_get(self, entry: CatalogEntry, dest: Path, progress: bool) -> tuple[Path, str]:
        cmd = ["apt-get", "download", "-q"]
        if os.geteuid() == 0:
            # apt drops to the _apt user, which cannot write our temp dir and warns.
            cmd += ["-o", "APT::Sandbox::User=root"]
        spec = f"{entry.package}={entry.package_version}"
        if progress:
            print(f"fetching {spec} with apt-get download", file=sys.stderr, flush=True)
        r = subprocess.run(cmd + [spec], cwd=dest, capture_output=True, text=True)
        debs = sorted(dest.glob("*.deb"))
        if r.returncode != 0 or len(debs) != 1:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            for d in debs:
                d.unlink()
            raise KernelError(
                f"apt-get download {spec} failed (exit {r.returncode}): {' / '.join(tail)}; "
                f"check the network and `apt-get update`, or set {MIRROR_ENV}"
            )
        return debs[0], f"apt: {spec}"

    def _http(self, entry: CatalogEntry, dest: Path, progress: bool, apt_error) -> tuple[Path, str]:
        target = dest / Path(entry.filename).name
        s = http.session()
        tried = []
        unreachable = []
        for base in self.mirrors:
            url = f"{base}/{entry.filename}"
            try:
                # Hashes are checked in _verified, after the whole file is here.
                http.download(s, url, target, size=entry.size, progress=progress)
                return target, url
            except http.NotFound:
                tried.append(url)
            except ArchiveUnreachable as e:
                unreachable.append(str(e))
        if unreachable and not tried:
            raise ArchiveUnreachable(
                f"the Debian mirror(s) in {MIRROR_ENV} are unreachable: {'; '.join(unreachable)}"
            )
        raise KernelError(
            f"no configured Debian mirror has {entry.filename} (tried {', '.join(tried + unreachable)}); "
            f"set {MIRROR_ENV} to a mirror that carries it (pool/updates/ files are in the security archive)"
            + (f"; apt also failed: {apt_error}" if apt_error else "")
        )

    def _verified(self, entry: CatalogEntry, deb: Path, origin: str) -> Downloaded:
        digest = sha256_file(deb)
        if digest != entry.sha256:
            deb.unlink()
            raise KernelError(
                f"checksum mismatch for {deb.name} from {origin}: the catalog pins sha256 "
                f"{entry.sha256}, the file has {digest}; it was discarded. If Debian rebuilt the "
                "package, regenerate the catalog with ci/update_catalog.py; otherwise use another mirror"
            )
        return Downloaded([deb], {deb.name: digest}, origin)
