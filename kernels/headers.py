"""Kernel headers beside a cached Debian kernel, so bcc can compile against it in the guest.

bcc builds its programs against ``/lib/modules/<release>/build`` (and
``source``) of the running kernel; without them it stops at
``include/linux/kconfig.h`` not found. Debian splits the headers into three
packages: ``linux-headers-<release>`` (the flavour's generated files, and
links into the others), ``linux-headers-<abi>-common`` and
``linux-kbuild-<version>``; the first one's Depends names the other two.

    headers = ensure_headers(kernel)        # a cached Debian kernel (harness.kernels.Kernel)
    headers.build                           # <entry>/headers/usr/src/linux-headers-<release>

Layout, inside the kernel's cache entry (the VM sees <entry>/lib/modules/<release>):

    <entry>/headers/usr/src/...             the three packages, unpacked together so
    <entry>/headers/usr/lib/linux-kbuild-*  their relative links resolve
    <entry>/headers/meta.json               written last: the headers are complete
    <entry>/lib/modules/<release>/build     -> <entry>/headers/usr/src/linux-headers-<release>
    <entry>/lib/modules/<release>/source    -> <entry>/headers/usr/src/linux-headers-<abi>-common

Installed once per entry, under a lock, into a temporary directory renamed
into place: an interrupted fetch leaves no half-unpacked headers. Packages are
fetched by a ``HeadersSource``: ``ArchiveHeaders`` reads the kernel's own suite
of the Debian archive and checks every .deb against its signed index, exactly
as the image was checked (kernels/archive.py); ``AptHeaders`` asks the host's
apt, for an entry that does not record its suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import filelock

from . import aptsources, archive, http
from .cache import default_root
from .errors import KernelError
from .kernel import Kernel, sha256_file

SCHEMA = 2  # 2: source is the -common package's tree where the packages have no source link
LOCK_TIMEOUT = 30 * 60
HEADERS_DIR = "headers"
KCONFIG = Path("include/linux/kconfig.h")


class HeadersSource(Protocol):
    def download(self, pins: list[tuple[str, str | None]], dest: Path) -> list[Path]:
        """Fetch (package, version or None for the candidate) .debs into dest, verified; return them."""


class AptHeaders:
    """Headers through the host's apt (`apt-get download`): apt verifies every .deb it fetches."""

    def download(self, pins: list[tuple[str, str | None]], dest: Path) -> list[Path]:
        if shutil.which("apt-get") is None:
            raise KernelError("apt-get is not available to fetch kernel headers; install them another way")
        before = set(dest.glob("*.deb"))
        args = [f"{name}={version}" if version else name for name, version in pins]
        done = subprocess.run(
            ["apt-get", "download", "-q", *args],
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise KernelError(
                f"apt-get download {' '.join(args)} failed: {done.stderr.strip()}\n"
                "The host's apt must list the kernel's suite (apt-get update), or the headers "
                "are no longer in the archive"
            )
        return sorted(set(dest.glob("*.deb")) - before)


class ArchiveHeaders:
    """Headers from the suite the kernel came from, each .deb checked against the signed index."""

    def __init__(self, suite: str, mirror: str | None = None):
        self.suite = suite
        self.mirror = mirror
        self._index: archive.SuiteIndex | None = None

    def download(self, pins: list[tuple[str, str | None]], dest: Path) -> list[Path]:
        if self._index is None:
            urls = aptsources.for_suite(self.suite, aptsources.bases(self.mirror))
            self._index = archive.SuiteIndex.load(self.suite, urls, default_root(), ring=archive.keyring())
        index = self._index
        s = http.session()
        out = []
        for name, version in pins:
            stanza = next(
                (c for c in index.packages.get(name, []) if version is None or c["Version"] == version), None
            )
            if stanza is None:
                raise KernelError(
                    f"{name} {version or ''} is not in {self.suite} at {index.base}: the archive dropped "
                    "it; refresh the catalog (python ci/update_catalog.py --write) and fetch the kernel again"
                )
            target = dest / Path(stanza["Filename"]).name
            http.download(
                s,
                f"{index.base}/{stanza['Filename']}",
                target,
                sha256=stanza["SHA256"],
                size=int(stanza["Size"]),
                progress=False,
            )
            out.append(target)
        return out


@dataclass(frozen=True)
class Headers:
    root: Path  # <entry>/headers
    build: Path
    source: Path


def _entry_dir(kernel: Kernel) -> Path:
    return kernel.image.parent.parent  # <entry>/boot/vmlinuz-<release>


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


def dependencies(depends: str) -> list[tuple[str, str | None]]:
    """The linux-headers-*/linux-kbuild-* packages a Depends field names, with an exact (=) version."""
    pins = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        m = re.match(r"([a-z0-9.+-]+)(?:\s*\(\s*(=|>=)\s*([^)\s]+)\s*\))?", first)
        if m and (m.group(1).startswith("linux-headers-") or m.group(1).startswith("linux-kbuild-")):
            pins.append((m.group(1), m.group(3) if m.group(2) == "=" else None))
    return pins


def installed(kernel: Kernel) -> Headers | None:
    root = _entry_dir(kernel) / HEADERS_DIR
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("schema") != SCHEMA:
        return None  # made by an older harness: fetched again
    return Headers(root, root / meta["build"], root / meta["source"])


def ensure_headers(kernel: Kernel, source: HeadersSource | None = None) -> Headers:
    """The kernel's headers, fetched and linked from lib/modules/<release> unless already there."""
    if kernel.source != "debian" or not kernel.package:
        raise KernelError(
            f"kernel {kernel.name} is not a Debian package ({kernel.source}); only Debian kernels get "
            "headers fetched: for a built tree, bcc uses the tree itself"
        )
    entry = _entry_dir(kernel)
    found = installed(kernel)
    if found is None:
        (entry.parent / ".locks").mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(entry.parent / ".locks" / f"{entry.name}-headers.lock"))
        try:
            with lock.acquire(timeout=LOCK_TIMEOUT):
                found = installed(kernel) or _install(kernel, entry, source or _source(entry))
        except filelock.Timeout:
            raise KernelError(
                f"gave up waiting for {lock.lock_file}: another headers fetch seems stuck"
            ) from None
    _link(entry / "lib" / "modules" / kernel.release, found)
    return found


def _meta(entry: Path) -> dict:
    try:
        return json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def _source(entry: Path) -> HeadersSource:
    suite = _meta(entry).get("suite")
    return ArchiveHeaders(suite) if suite else AptHeaders()


def _install(kernel: Kernel, entry: Path, source: HeadersSource) -> Headers:
    # the headers come from the same source package as the image: name_version_arch.deb
    debs_of_image = sorted(_meta(entry).get("debs", {}))
    version = debs_of_image[0].split("_")[1] if debs_of_image else None
    for stale in entry.glob(f".tmp-{HEADERS_DIR}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # we hold the lock: an interrupted fetch's
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{HEADERS_DIR}-", dir=entry))
    try:
        debs_dir = work / "debs"
        debs_dir.mkdir()
        name = f"linux-headers-{kernel.release}"
        debs = source.download([(name, version)], debs_dir)
        if len(debs) != 1:
            raise KernelError(f"expected one .deb for {name}, got {[d.name for d in debs]}")
        debs += source.download(dependencies(_deb_field(debs[0], "Depends")), debs_dir)
        tree = work / "tree"
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
        build, src = _targets(tree, kernel.release)
        meta = {
            "schema": SCHEMA,
            "release": kernel.release,
            "build": str(build.relative_to(tree)),
            "source": str(src.relative_to(tree)),
            "debs": {d.name: sha256_file(d) for d in debs},
        }
        shutil.rmtree(tree / "lib", ignore_errors=True)  # its absolute build/source links point at /usr/src
        (tree / "meta.json").write_text(json.dumps(meta, indent=1))
        final = entry / HEADERS_DIR
        if final.exists():
            shutil.rmtree(final)
        tree.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headers = installed(kernel)
    assert headers is not None
    return headers


def _targets(tree: Path, release: str) -> tuple[Path, Path]:
    """build and source as the headers package links them (to /usr/src/...), inside tree."""
    mods = tree / "lib" / "modules" / release
    found: list[Path] = []
    for which in ("build", "source"):
        link = mods / which
        target = os.readlink(link) if link.is_symlink() else f"/usr/src/linux-headers-{release}"
        path = tree / target.lstrip("/")
        if which == "source" and not (path / KCONFIG).is_file():
            # trixie's packages have no source link: the sources are the -common package's,
            # the one with include/linux/kconfig.h (bcc stops without it)
            path = next(
                (
                    p
                    for p in sorted((tree / "usr" / "src").glob("linux-headers-*"))
                    if (p / KCONFIG).is_file()
                ),
                path,
            )
        if not path.is_dir() or (which == "source" and not (path / KCONFIG).is_file()):
            raise KernelError(f"the headers packages have no {target} for {which}")
        found.append(path)
    return found[0], found[1]


def _link(mods: Path, headers: Headers) -> None:
    """lib/modules/<release>/{build,source} -> the cached headers (absolute: the guest sees the same paths)."""
    if not mods.is_dir():
        raise KernelError(f"{mods} is missing: the kernel's cache entry is incomplete; fetch it again")
    for name, target in (("build", headers.build), ("source", headers.source)):
        link = mods / name
        if link.is_symlink() and os.readlink(link) == str(target):
            continue
        tmp = mods / f".{name}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
