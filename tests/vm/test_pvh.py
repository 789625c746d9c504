"""harness.vm.pvh: the uncompressed vmlinux of a real Debian kernel, with its PVH entry, cached once."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness.kernels import resolve
from harness.kernels.errors import KernelError
from harness.vm import pvh, vng


@pytest.fixture
def image() -> Path:
    try:
        return resolve("6.1", fetch=False, progress=False).image
    except KernelError as exc:
        pytest.skip(f"no cached 6.1 kernel to read (ci/setup.sh fetches it): {exc}")


def test_a_debian_kernel_gives_a_pvh_elf_once(image, tmp_path, monkeypatch):
    monkeypatch.setattr(pvh, "cache_dir", lambda: tmp_path)
    elf = pvh.vmlinux(image)
    assert elf is not None and elf.parent == tmp_path
    data = elf.read_bytes()
    assert data.startswith(b"\x7fELF") and pvh.has_pvh_note(data)
    assert len(data) > 4 * image.stat().st_size  # uncompressed
    before = elf.stat().st_mtime_ns
    assert pvh.vmlinux(image) == elf and elf.stat().st_mtime_ns >= before  # the cached copy, touched
    assert [p.name for p in tmp_path.iterdir()] == [elf.name]  # no temporary file left


def test_an_elf_without_the_note_and_a_non_kernel_give_none(tmp_path, monkeypatch):
    monkeypatch.setattr(pvh, "cache_dir", lambda: tmp_path / "cache")
    assert not pvh.has_pvh_note(Path(sys.executable).resolve().read_bytes())  # an ELF, no Xen note
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a kernel")
    assert pvh.vmlinux(junk) is None
    assert pvh.vmlinux(junk) is None  # remembered
    assert pvh.vmlinux(tmp_path / "missing") is None


def test_the_boot_command_takes_the_elf_last_and_skips_unquotable_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_VNG", shutil.which("true") or "/bin/true")
    cmd = vng.command(Path("/k"), tmp_path, "true", pvh=Path("/cache/vmlinux/ab.elf"))
    assert cmd[-3:] == ["--qemu-opts=-kernel /cache/vmlinux/ab.elf", "--", "true"]
    assert not any(
        "qemu-opts" in a for a in vng.command(Path("/k"), tmp_path, "true", pvh=Path("/a b/x.elf"))
    )


def test_init_shims_are_executable_and_first_on_inits_path():
    (path,) = [a for a in vng.APPEND if a.startswith("PATH=")]
    assert path.startswith(f"PATH={vng.INIT_SHIMS}:")
    for name in ("systemd-tmpfiles", "udevadm", "ip"):
        assert (vng.INIT_SHIMS / name).stat().st_mode & 0o111
    assert not any(a.startswith("PATH=") for a in vng.FULL_INIT_APPEND)
