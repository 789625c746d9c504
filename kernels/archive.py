"""Read one suite of a Debian archive without the host's apt: InRelease checked by gpgv, Packages checked against it.

    index = SuiteIndex.load("trixie-backports", ["http://.../debian"], cache_root)
    index.find("linux-base-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1")   # a Packages stanza, or None
    index.base                                                     # the URL that served the suite

The chain of trust, as apt has it: the suite's InRelease must carry a good
signature by a key of the Debian archive keyring (gpgv; only the signed text
is read, never what surrounds it), and must name the suite asked for; the
Packages index must have the size and sha256 InRelease lists for it; a .deb
must match its Packages stanza (checked by the caller, kernels/debian.py).
Valid-Until is not enforced: the archive this project's machines reach
serves sid with Valid-Until 2026-11-06 three weeks later, and a replayed old
index cannot make a pinned .deb pass, because the catalog pins its sha256.

Packages indexes (up to 11 MB compressed for sid) are cached by their sha256
under <cache root>/.index/, written atomically under a lock like kernels;
InRelease (under 200 kB) is fetched each time, because it is what says what
the suite carries now.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import filelock
from debian import deb822

from . import http
from .errors import ArchiveUnreachable, KernelError

KEYRING_ENV = "HARNESS_DEBIAN_KEYRING"
# Installed by the debian-archive-keyring package (ci/setup.sh installs it).
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Kernels are in main; amd64 is the only architecture the harness boots.
PACKAGES = "main/binary-amd64/Packages.xz"
LOCK_TIMEOUT = 10 * 60


def keyring(explicit: str | None = None) -> Path:
    path = Path(explicit or os.environ.get(KEYRING_ENV) or DEFAULT_KEYRING)
    if not path.is_file():
        raise KernelError(
            f"the Debian archive keyring {path} does not exist; it is needed to check the archive's "
            f"signatures: apt-get install debian-archive-keyring, or set {KEYRING_ENV} to a keyring file"
        )
    return path


def verify_signed(data: bytes, ring: Path, what: str) -> bytes:
    """The text gpgv found validly signed by a key in ring, or a KernelError."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise KernelError(f"gpgv is not installed; it checks {what}: apt-get install gpgv")
    with tempfile.TemporaryDirectory(prefix="harness-gpgv-") as tmp:
        signed, out = Path(tmp) / "InRelease", Path(tmp) / "text"
        signed.write_bytes(data)
        r = subprocess.run(
            [gpgv, "--keyring", str(ring), "--status-fd", "1", "--output", str(out), str(signed)],
            capture_output=True,
            text=True,
        )
        status = r.stdout.split()
        if r.returncode != 0 or "[GNUPG:]" not in r.stdout or "VALIDSIG" not in status:
            detail = "; ".join(line for line in r.stderr.splitlines() if line.strip())[-400:]
            raise KernelError(
                f"{what} has no valid signature by a key in {ring} (gpgv: {detail or 'exit ' + str(r.returncode)}); "
                "it was not used. The mirror serves a damaged or forged file: use another mirror, or if the "
                f"archive has a new key, update debian-archive-keyring or set {KEYRING_ENV}"
            )
        return out.read_bytes()


class SuiteMissing(KernelError):
    """Every archive that answered has no such suite (gone from the archive, or not configured)."""


@dataclass
class SuiteIndex:
    suite: str
    base: str
    release: deb822.Release
    packages: dict[str, list[deb822.Packages]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        suite: str,
        urls: list[str],
        cache_root: Path,
        *,
        ring: Path | None = None,
        prefix: str = "linux-",
        progress: bool = False,
    ) -> SuiteIndex:
        """Fetch and verify suite from the first of urls that has it; keep the stanzas of packages named prefix*."""
        ring = ring or keyring()
        s = http.session()
        missing, unreachable = [], []
        for base in urls:
            url = f"{base}/dists/{suite}/InRelease"
            try:
                raw = http.get_bytes(s, url)
            except http.NotFound:
                missing.append(url)
                continue
            except ArchiveUnreachable as e:
                unreachable.append(str(e))
                continue
            release = deb822.Release(verify_signed(raw, ring, url))
            names = {release.get("Suite"), release.get("Codename")}
            if suite not in names:
                raise KernelError(
                    f"{url} is signed but describes suite {release.get('Suite')}/{release.get('Codename')}, "
                    f"not {suite}; the mirror is misconfigured: use another mirror"
                )
            index = cls(suite, base, release)
            text = index._packages_text(s, cache_root, progress)
            if progress:
                print(
                    f"verified {suite} at {base}: InRelease signed by a key in {ring}, {PACKAGES} matches it",
                    file=sys.stderr,
                    flush=True,
                )
            for para in text.split("\n\n"):
                if f"Package: {prefix}" in para:
                    stanza = deb822.Packages(para)
                    index.packages.setdefault(stanza["Package"], []).append(stanza)
            return index
        if unreachable and not missing:
            raise ArchiveUnreachable(f"no Debian archive answered for {suite}: {'; '.join(unreachable)}")
        raise SuiteMissing(
            f"no configured Debian archive has suite {suite} (tried {', '.join(missing + unreachable)}); "
            "for a -security suite add the security archive to the mirror list"
        )

    def find(self, package: str, version: str) -> deb822.Packages | None:
        for stanza in self.packages.get(package, []):
            if stanza["Version"] == version:
                return stanza
        return None

    def _packages_text(self, s, cache_root: Path, progress: bool) -> str:
        listed = {e["name"]: e for e in self.release.get("SHA256", [])}
        entry = listed.get(PACKAGES)
        if entry is None:
            raise KernelError(
                f"{self.base}/dists/{self.suite}/InRelease lists no {PACKAGES}; "
                "the mirror does not carry amd64: use another mirror"
            )
        sha, size = entry["sha256"], int(entry["size"])
        data = cached_index(cache_root, sha, size, f"{self.base}/dists/{self.suite}/{PACKAGES}", s, progress)
        return lzma.decompress(data).decode("utf-8")


def cached_index(cache_root: Path, sha256: str, size: int, url: str, s, progress: bool) -> bytes:
    """The file with this sha256, from <cache_root>/.index/ or downloaded there (checked, atomic, locked)."""
    d = cache_root / ".index"
    final = d / f"{sha256}.xz"
    if final.is_file():
        data = final.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
    try:
        d.mkdir(parents=True, exist_ok=True)
        (cache_root / ".locks").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KernelError(
            f"cannot write the index cache {d} ({e.strerror}); fix its permissions or set HARNESS_CACHE_DIR"
        ) from None
    with filelock.FileLock(str(cache_root / ".locks" / f"index-{sha256}.lock"), timeout=LOCK_TIMEOUT):
        if final.is_file() and hashlib.sha256(final.read_bytes()).hexdigest() == sha256:
            return final.read_bytes()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-index-", dir=d)
        os.close(fd)
        try:
            http.download(s, url, Path(tmp), sha256=sha256, size=size, progress=progress)
            os.replace(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return final.read_bytes()
