"""The vng command line the launcher and the benchmarks share (harness.vm.vng)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from harness.vm import pagecache, vng
from harness.vm.launcher import VM
from harness.vm.seam import VMConfig
from tests.vm import fakevng


def test_harness_vng_names_the_executable(monkeypatch, tmp_path):
    exe = tmp_path / "vng"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("HARNESS_VNG", str(exe))
    assert vng.find_vng() == str(exe)
    exe.chmod(0o644)
    with pytest.raises(vng.VngError, match="HARNESS_VNG=.* is not an executable file; unset it"):
        vng.find_vng()


def test_command_line_of_a_tcg_boot(monkeypatch):
    monkeypatch.setenv("HARNESS_VNG", "/bin/true")
    cmd = vng.command(Path("/k/bzImage"), Path("/src"), "exec agent", rwdirs=[Path("/res")])
    assert cmd[:12] == [
        "/bin/true",
        "--verbose",
        "--force-9p",
        "-r",
        "/k/bzImage",
        "-m",
        "1G",
        "-p",
        "2",
        "--cwd",
        "/src",
        "--disable-kvm",
    ]
    assert cmd[12:14] == ["--rwdir", "/res=/res"]
    assert cmd[14:16] == ["--append", vng.APPEND[0]] and "modprobe.blacklist=kvm," in vng.APPEND[0]
    assert cmd[-2:] == ["--", "exec agent"]
    bare = vng.command(Path("/k"), Path("/"), "true", kvm=True, append=(), verbose=False, force_9p=False)
    assert bare == ["/bin/true", "-r", "/k", "-m", "1G", "-p", "2", "--cwd", "/", "--", "true"]


def test_the_launchers_command_is_one_the_fake_accepts(monkeypatch, tmp_path):
    """tests/vm/fakevng.py parses exactly what harness.vm.vng builds for a VM."""

    class Kernel:
        name = "k"
        image = tmp_path / "bzImage"

    monkeypatch.setenv("HARNESS_VNG", "/bin/true")
    cfg = VMConfig(
        log_dir=tmp_path / "logs",
        results_dir=tmp_path / "res",
        pyzip=(tmp_path / "h.zip", tmp_path / "python-tree"),
    )
    vm = VM(Kernel, cfg, tmp_path)
    cmd = vm.command()
    args = fakevng.parse(cmd[1:])
    # the guest's command is a file the guest reads: the kernel's command line stays short
    assert args.script == [f"exec sh {vm.guest_script}"]
    script = vm.guest_script.read_text()
    assert (args.image, args.memory, args.cpus, args.cwd) == (str(Kernel.image), "1G", 2, str(tmp_path))
    assert args.rwdir == [f"{tmp_path / 'res'}={tmp_path / 'res'}"] and args.disable_kvm
    # the modules' directory is shared through the page cache: the guest imports from it in place
    cached = pagecache.dirs(Kernel.image, cfg.pyzip)
    assert cached[-1] == tmp_path
    assert [f"--qemu-opts={o}" for o in args.qemu_opts] == pagecache.qemu_options(cached)
    # udevd, hidden from virtme-ng-init by the init shims, starts first and in the background
    assert script.startswith(vng.LATE_UDEVD + pagecache.guest_command(cached) + 'PATH="')
    assert f"PYTHONPATH={tmp_path / 'h.zip'}:{tmp_path / 'python-tree'} exec" in script
    assert script.endswith("-B -P -m harness.guest\n")
    # without the page cache, the same paths are read over vng's uncached root
    plain = VM(Kernel, dataclasses.replace(cfg, page_cache=False), tmp_path)
    assert "harnesscache" not in " ".join(plain.command())
    assert plain.guest_script.read_text().startswith(vng.LATE_UDEVD + f'PATH="${{PATH#{vng.INIT_SHIMS}:}}" ')
    assert (
        f"PYTHONPATH={tmp_path / 'h.zip'}:{tmp_path / 'python-tree'} exec" in plain.guest_script.read_text()
    )


@pytest.mark.parametrize("tmpdir", ["/dev/shm", "/run"])
def test_the_guests_command_file_is_where_the_guest_sees_it(monkeypatch, tmp_path, tmpdir):
    """A TMPDIR under /run (/run/user/UID) or /dev/shm is the guest's own fresh mount there:
    the command file goes under /tmp, which the guest sees as the host's (nothing is written
    under TMPDIR itself, so any user can run this)."""

    class Kernel:
        name = "k"
        image = tmp_path / "bzImage"

    monkeypatch.setattr(tempfile, "tempdir", tmpdir)
    vm = VM(Kernel, VMConfig(log_dir=tmp_path / "logs"), tmp_path)
    try:
        assert vm.guest_script.parent.parent == Path("/tmp")
    finally:
        vm._home.cleanup()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    vm = VM(Kernel, VMConfig(log_dir=tmp_path / "logs"), tmp_path)
    assert vm.guest_script.parent.parent == tmp_path  # any other TMPDIR is kept
    vm._home.cleanup()
