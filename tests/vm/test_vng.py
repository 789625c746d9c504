"""The vng command line the launcher and the benchmarks share (harness.vm.vng)."""

from __future__ import annotations

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
        pyzip=(tmp_path / "h.zip", tmp_path / "py.zip"),
    )
    cmd = VM(Kernel, cfg, tmp_path).command()
    args = fakevng.parse(cmd[1:])
    assert (args.image, args.memory, args.cpus, args.cwd) == (str(Kernel.image), "1G", 2, str(tmp_path))
    assert args.rwdir == [f"{tmp_path / 'res'}={tmp_path / 'res'}"] and args.disable_kvm
    copies = (
        f"cp -- {tmp_path / 'h.zip'} {vng.GUEST_PYZIP.format(0)} && "
        f"cp -- {tmp_path / 'py.zip'} {vng.GUEST_PYZIP.format(1)} && "
    )
    cached = pagecache.dirs(Kernel.image)  # /usr and the interpreter: the image is in no cache entry
    assert [f"--qemu-opts={o}" for o in args.qemu_opts] == pagecache.qemu_options(cached)
    assert args.script[0].startswith(pagecache.guest_command(cached) + copies)
    assert args.script[0].endswith("-B -P -m harness.guest")
