"""The on-disk kernel cache: one directory per catalog name, installed atomically, locked per entry, verified before use.

A directory is named by the exact catalog name, which never changes meaning,
and is still only used when its meta.json records the entry's build: the
sha256 of every Debian package, or the Ubuntu mainline tag. A copy made under
another name (an older harness keyed the cache by names such as "6.1.192",
which have since been given to other builds) is found by that build and used
where it is, so nothing is fetched again and nothing is reused for another build.

Layout (root = $HARNESS_CACHE_DIR or the user cache dir + /kernels):

    <root>/<name>/boot/vmlinuz-<release>     what `vng -r` boots
    <root>/<name>/lib/modules/<release>/     found by vng next to the image
    <root>/<name>/meta.json                  written last: its presence marks
                                             a complete entry
    <root>/.locks/<name>.lock                one fetch per entry at a time
    <root>/.tmp-<name>-*/                    work in progress; a leftover
                                             one is from an interrupted fetch

Reading a complete entry writes nothing, so a read-only shared cache works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import filelock
import platformdirs

from .catalog import CatalogEntry
from .errors import KernelError
from .kernel import Kernel, sha256_file
from .source import KernelSource

SCHEMA = 1
CACHE_ENV = "HARNESS_CACHE_DIR"
APP = "bpf-vm-harness"
# A fetch holding the lock longer than this is taken to be stuck.
LOCK_TIMEOUT = 30 * 60


def default_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP)) / "kernels"


@dataclass(frozen=True)
class Entry:
    """A complete cache entry and its meta.json."""

    dir: Path
    meta: dict

    @property
    def image(self) -> Path:
        return self.dir / self.meta["image"]

    def kernel(self, name: str | None = None) -> Kernel:
        """The bootable kernel, named name (the catalog entry's; default: the name it was fetched under)."""
        m = self.meta
        return Kernel(
            name=name or m["name"],
            release=m["release"],
            image=self.image,
            source=m["source"],
            sha256=m["image_sha256"],
            package=m.get("package"),
            origin=m.get("origin", ""),
        )


def _tool(name: str, package: str) -> str:
    # depmod lives in sbin, which is often not on a normal user's PATH.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise KernelError(
            f"{name} is not installed; it is needed to unpack kernel packages: apt-get install {package}"
        )
    return found


class Cache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    # --- reading -----------------------------------------------------------

    def _unusable(self, what: str, err: OSError | str) -> KernelError:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return KernelError(
            f"kernel cache directory {self.root} is not {what} ({reason}); fix its permissions or "
            f"set {CACHE_ENV} to a directory you can {'write' if what == 'writable' else 'read'}"
        )

    def _check_readable(self) -> None:
        if not self.root.exists():
            return
        try:
            os.listdir(self.root)
        except OSError as e:
            raise self._unusable("readable", e) from None

    def lookup(self, name: str) -> Entry | None:
        """The complete entry for name, or None. Never writes."""
        self._check_readable()
        d = self.root / name
        try:
            with open(d / "meta.json", encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except PermissionError as e:
            raise self._unusable("readable", e) from None
        except (OSError, ValueError):
            return None  # torn or foreign: treated as absent, replaced on the next fetch
        if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or "image" not in meta:
            return None
        return Entry(d, meta)

    def verified(self, name: str) -> Entry | None:
        """lookup(), plus a check that the image is the one meta.json recorded."""
        e = self.lookup(name)
        if e is None:
            return None
        try:
            digest = sha256_file(e.image)
        except OSError as err:
            digest = f"unreadable ({err.strerror})"
        if digest != e.meta.get("image_sha256"):
            raise KernelError(
                f"cached kernel {name} is damaged: {e.image} has sha256 {digest}, meta.json "
                f"recorded {e.meta.get('image_sha256')}; fetch it again with: "
                f"python -m harness kernels fetch --force {name}"
            )
        return e

    def find(self, entry: CatalogEntry) -> Entry | None:
        """The complete copy of entry's build: under its name, else under any other name
        (see the module docstring); None when there is none. Never writes."""
        for name in [entry.name, *sorted(self.names() - {entry.name})]:
            e = self.lookup(name)
            if e is not None and same_build(entry, e.meta):
                return e
        return None

    def current(self, entry: CatalogEntry) -> Entry | None:
        """find(), plus verified(): the copy to boot, or None (it is fetched)."""
        e = self.find(entry)
        return None if e is None else self.verified(e.dir.name)

    def names(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        self._check_readable()
        return {
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".") and self.lookup(p.name) is not None
        }

    # --- writing -----------------------------------------------------------

    def _prepare_root(self) -> None:
        """Make sure we may write, before anything is created."""
        probe = self.root
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise self._unusable("writable", f"{probe} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise self._unusable("writable", "permission denied")
        self._check_readable()
        try:
            (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._unusable("writable", e) from None

    def install(
        self, entry: CatalogEntry, source: KernelSource, *, force: bool = False, progress: bool = True
    ) -> Entry:
        """Fetch and unpack entry unless a complete copy exists; safe across processes."""
        self._prepare_root()
        lock = filelock.FileLock(str(self.root / ".locks" / f"{entry.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if progress:
                print(
                    f"waiting for another process that is fetching kernel {entry.name}",
                    file=sys.stderr,
                    flush=True,
                )
            try:
                lock.acquire(timeout=LOCK_TIMEOUT)
            except filelock.Timeout:
                raise KernelError(
                    f"gave up waiting {LOCK_TIMEOUT // 60} min for the lock {lock.lock_file}: "
                    "another fetch of this kernel seems stuck; stop it, or delete the lock file "
                    "if no such process exists"
                ) from None
        try:
            if not force:
                done = self.current(entry)
                if done is not None:
                    return done
            self._clean(entry.name)
            return self._install_locked(entry, source, progress)
        finally:
            lock.release()

    def _clean(self, name: str) -> None:
        # We hold the entry's lock, so every .tmp-<name>-* is an orphan.
        for p in self.root.glob(f".tmp-{name}-*"):
            shutil.rmtree(p, ignore_errors=True)
        d = self.root / name
        if d.exists() and self.lookup(name) is None:
            shutil.rmtree(d, ignore_errors=True)
        # A complete but outdated entry stays until the new one is renamed over it (see --force below).

    def _install_locked(self, entry: CatalogEntry, source: KernelSource, progress: bool) -> Entry:
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=self.root))
        try:
            got = source.download(entry, work / "debs", progress=progress)
            tree = work / "tree"
            tree.mkdir()
            dpkg_deb = _tool("dpkg-deb", "dpkg")
            for deb in got.debs:
                r = subprocess.run([dpkg_deb, "-x", str(deb), str(tree)], capture_output=True, text=True)
                if r.returncode != 0:
                    raise KernelError(
                        f"dpkg-deb could not unpack {deb.name}: {r.stderr.strip()}; "
                        "the package may be damaged: fetch again"
                    )
                deb.unlink()  # half the disk space until the rename
            release = self._finish_tree(tree, entry)
            image = tree / "boot" / f"vmlinuz-{release}"
            meta = {
                "schema": SCHEMA,
                "name": entry.name,
                "release": release,
                "source": entry.source,
                "package": entry.package or _package_of(got.debs[0].name),
                "suite": entry.suite,
                "tag": entry.tag,
                "debs": got.sha256,
                "image": f"boot/vmlinuz-{release}",
                "image_sha256": sha256_file(image),
                "origin": got.origin,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            (tree / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            final = self.root / entry.name
            if final.exists():  # --force or an outdated copy: move the old one aside, then swap
                final.rename(work / "old")
            tree.rename(final)
            return Entry(final, meta)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _finish_tree(self, tree: Path, entry: CatalogEntry) -> str:
        """Put the image and modules where vng finds them, check them, and build modules.dep.

        5.10 to 6.12 ship boot/vmlinuz-<rel> and lib/modules/<rel>/; the 7.x
        split packages ship everything under usr/lib/modules/<rel>/ (the
        image as vmlinuz, config and modules.builtin from linux-base-*).
        vng wants <dir>/boot/vmlinuz-<rel> next to <dir>/lib/modules/<rel>.
        """
        usr = tree / "usr" / "lib" / "modules"
        for d in sorted(usr.iterdir()) if usr.is_dir() else []:
            target = tree / "lib" / "modules" / d.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                d.rename(target)
            if (target / "vmlinuz").is_file():
                (tree / "boot").mkdir(exist_ok=True)
                (target / "vmlinuz").rename(tree / "boot" / f"vmlinuz-{d.name}")
                if (target / "config").is_file():
                    shutil.copyfile(target / "config", tree / "boot" / f"config-{d.name}")
        images = sorted((tree / "boot").glob("vmlinuz-*")) if (tree / "boot").is_dir() else []
        if len(images) != 1:
            raise KernelError(
                f"the package(s) for kernel {entry.name} contain {len(images)} kernel images "
                "(boot/vmlinuz-* or usr/lib/modules/*/vmlinuz), expected exactly one; the catalog "
                "entry points at the wrong packages"
            )
        release = images[0].name.removeprefix("vmlinuz-")
        if entry.release and release != entry.release:
            raise KernelError(
                f"kernel {entry.name}: the catalog says release {entry.release}, the "
                f"package contains {release}; correct `release` in kernels/catalog.toml"
            )
        # Ubuntu ships the image mode 0600; vng runs as the user and must read it.
        images[0].chmod(0o644)
        mods = tree / "lib" / "modules" / release
        if not mods.is_dir():
            raise KernelError(
                f"the package(s) for kernel {entry.name} contain no lib/modules/{release}; "
                "without modules the guest has no 9p; the catalog entry needs a "
                "modules package"
            )
        absent = [f for f in ("modules.builtin", "modules.order") if not (mods / f).is_file()]
        if absent:
            raise KernelError(
                f"kernel {entry.name}: lib/modules/{release} has no {' or '.join(absent)}, which depmod "
                "needs; for a 7.x kernel the catalog entry must include its linux-base-* package"
            )
        r = subprocess.run(
            [_tool("depmod", "kmod"), "-b", str(tree), release], capture_output=True, text=True
        )
        if r.returncode != 0 or not (mods / "modules.dep").exists():
            raise KernelError(f"depmod failed for {release}: {r.stderr.strip()}")
        # virtme-ng mounts the shared root over 9p: as a module or built in.
        listed = (mods / "modules.dep").read_text() + (mods / "modules.builtin").read_text()
        if "fs/9p/9p.ko" not in listed:
            raise KernelError(
                f"kernel {entry.name} ({release}) has no 9p file system, which virtme-ng needs for the "
                "guest's root; use the generic flavour (-amd64), not -cloud-amd64"
            )
        return release


def same_build(entry: CatalogEntry, meta: dict) -> bool:
    """Whether a cache entry's meta.json records entry's build: for Debian, exactly the
    pinned packages (by sha256); for Ubuntu mainline, the tag (older copies record it
    only in their origin URL, <archive>/<tag>/amd64/) and the release."""
    if meta.get("source") != entry.source:
        return False
    if entry.debs:
        return sorted(meta.get("debs", {}).values()) == sorted(p.sha256 for p in entry.debs)
    tag = meta.get("tag") or next(
        (part for part in str(meta.get("origin", "")).split("/") if part == entry.tag), None
    )
    return tag == entry.tag and (entry.release is None or meta.get("release") == entry.release)


def _package_of(deb_name: str) -> str:
    return deb_name.split("_", 1)[0]
