"""harness.kernels.headers: Debian's headers packages beside a cached kernel, linked as build and source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.kernels import headers as H
from harness.kernels.catalog import load_catalog, resolve_spec
from harness.kernels.errors import KernelError
from harness.kernels.kernel import Kernel

# The catalog's 6.1: a bookworm kernel a Debian 12 host's apt lists (a pin of its own
# here would go stale when the security archive moves on to the next build)
_SIX_ONE = resolve_spec("6.1", load_catalog())
RELEASE, VERSION = _SIX_ONE.release, _SIX_ONE.debs[0].version
REAL_DEPENDS = (
    "linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86"
)


def fake_entry(root: Path, release: str = RELEASE, source: str = "debian") -> Kernel:
    entry = root / "6.1.192"
    (entry / "boot").mkdir(parents=True)
    (entry / "lib" / "modules" / release).mkdir(parents=True)
    image = entry / "boot" / f"vmlinuz-{release}"
    image.write_bytes(b"")
    (entry / "meta.json").write_text(json.dumps({"package_version": VERSION}))
    return Kernel("6.1.192", release, image, source, "", f"linux-image-{release}-unsigned", "test")


class Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def download(self, pins, dest):
        self.calls += 1
        return self.inner.download(pins, dest)


class Failing:
    def download(self, pins, dest):
        (dest / "partial.deb").write_bytes(b"half")
        raise KernelError("archive unreachable")


def apt_knows_headers() -> bool:
    if shutil.which("apt-cache") is None or shutil.which("dpkg-deb") is None:
        return False
    out = subprocess.run(
        ["apt-cache", "show", f"linux-headers-{RELEASE}={VERSION}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0 and "Package:" in out.stdout


def test_dependencies_are_the_headers_and_kbuild_packages_of_depends():
    assert H.dependencies(REAL_DEPENDS) == [
        ("linux-headers-6.1.0-56-common", "6.1.192-2"),
        ("linux-kbuild-6.1", None),
    ]


def test_only_debian_kernels_get_headers(tmp_path):
    kernel = fake_entry(tmp_path, source="build")
    with pytest.raises(KernelError, match="not a Debian package"):
        H.ensure_headers(kernel)


def test_failed_download_leaves_nothing_behind(tmp_path):
    kernel = fake_entry(tmp_path)
    with pytest.raises(KernelError, match="archive unreachable"):
        H.ensure_headers(kernel, Failing())
    entry = kernel.image.parent.parent
    assert sorted(p.name for p in entry.iterdir()) == ["boot", "lib", "meta.json"]
    assert list((entry / "lib" / "modules" / RELEASE).iterdir()) == []
    assert H.installed(kernel) is None


@pytest.mark.slow  # real headers packages unpacked
def test_real_headers_are_unpacked_and_linked_once(tmp_path):
    if not apt_knows_headers():
        pytest.skip(f"the host's apt does not list linux-headers-{RELEASE}={VERSION} (a Debian 12 host does)")
    kernel = fake_entry(tmp_path)
    source = Counting(H.AptHeaders())
    got = H.ensure_headers(kernel, source)
    mods = kernel.image.parent.parent / "lib" / "modules" / RELEASE
    assert (mods / "build").resolve() == got.build.resolve()
    assert (mods / "build" / "include" / "generated" / "autoconf.h").is_file()  # the flavour's package
    assert (mods / "source" / "include" / "linux" / "kconfig.h").is_file()  # what bcc stopped at without it
    assert (mods / "build" / "scripts").resolve().is_dir()  # linux-kbuild, through a relative link
    meta = json.loads((got.root / "meta.json").read_text())
    assert set(meta["debs"]) >= {f"linux-headers-{RELEASE}_{VERSION}_amd64.deb"}
    assert len(meta["debs"]) == 3
    assert source.calls == 2  # the flavour's package, then what its Depends names
    assert H.ensure_headers(kernel, source) == got
    assert source.calls == 2
    os.unlink(mods / "build")  # a lost link is put back without a download
    H.ensure_headers(kernel, source)
    assert (mods / "build").is_symlink() and source.calls == 2
