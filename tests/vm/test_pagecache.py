"""harness.vm.pagecache without a VM: which trees, the shares vng is asked for, the guest's command,
the warm key's stamp. The guest side (the mounts themselves) runs on a real kernel in
tests/vm/test_vm_lost.py (tests/vmcases/vm_behaviour.py::test_system_trees_come_through_the_page_cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.vm import pagecache, vng


def _entry(root: Path) -> Path:
    """A kernel entry as the harness's cache lays it out."""
    (root / "boot").mkdir(parents=True)
    (root / "lib" / "modules" / "6.1.0-57-amd64").mkdir(parents=True)
    (root / "meta.json").write_text("{}")
    image = root / "boot" / "vmlinuz-6.1.0-57-amd64"
    image.write_bytes(b"kernel")
    return image


def test_usr_the_interpreter_and_a_cached_kernel_entry_are_cached(tmp_path):
    image = _entry(tmp_path / "6.1.192")
    found = pagecache.dirs(image)
    assert found[0] == Path("/usr") and found[-1] == tmp_path / "6.1.192"
    prefix = Path(sys.base_prefix).resolve()
    assert (prefix in found) != prefix.is_relative_to("/usr")  # /usr's share already holds it
    zips = tmp_path / "python"
    zips.mkdir()
    with_zips = pagecache.dirs(image, (zips / "harness-1.zip", zips / "python-2.zip"))
    assert with_zips == (*found, zips)  # one share for the directory of the module zips


def test_an_image_outside_the_kernel_cache_shares_nothing_of_its_own(tmp_path):
    """/boot/vmlinuz-* or a build tree's bzImage: its parent's parent is no cache entry (it may be /)."""
    (tmp_path / "boot").mkdir()
    image = tmp_path / "boot" / "vmlinuz-6.1.0-57-amd64"
    image.write_bytes(b"kernel")
    assert pagecache.kernel_entry(image) is None
    assert tmp_path not in pagecache.dirs(image)
    assert pagecache.kernel_entry(Path("/boot/vmlinuz-6.1.0-57-amd64")) is None


def test_a_path_qemu_cannot_take_is_left_uncached(tmp_path):
    image = _entry(tmp_path / "with,comma")
    assert tmp_path / "with,comma" not in pagecache.dirs(image)


def test_each_tree_is_a_read_only_share_and_the_guest_mounts_it_before_python(tmp_path):
    trees = (Path("/usr"), tmp_path)
    cmd = vng.command(Path("/k"), Path("/"), "true", cached=trees)
    opts = [a for a in cmd if a.startswith("--qemu-opts=-fsdev")]
    assert len(opts) == 2
    for i, (opt, tree) in enumerate(zip(opts, trees, strict=True)):
        assert f"path={tree}," in opt and "readonly=on" in opt and f"mount_tag={pagecache.tag(i)}" in opt
    script = vng.guest_command(None, (Path("/h.zip"),), trees)
    mounts = pagecache.guest_command(trees)
    assert mounts.endswith(f"sh {pagecache.GUEST_SCRIPT} /usr {tmp_path}; ")
    assert script.index(mounts) < script.rindex(" exec ")  # the agent's
    plain = vng.guest_command(None, (Path("/h.zip"),), ())
    assert "pagecache.sh" not in plain and "PYTHONPATH=/h.zip exec " in plain  # nothing to mount


@pytest.mark.parametrize("shell", [["sh"], ["busybox", "sh"]], ids=["sh", "busybox"])
def test_the_guest_script_skips_shares_that_are_not_there(tmp_path, shell):
    """Under the fake vng (and on any host) no harnesscacheN share exists: nothing is mounted, nothing said."""
    if not shutil.which(shell[0]):
        pytest.skip(f"{shell[0]} is not installed here (ci/setup.sh installs busybox-static)")
    done = subprocess.run(
        [*shell, str(pagecache.GUEST_SCRIPT), "/usr", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert os.access(pagecache.GUEST_SCRIPT, os.R_OK)


def test_the_stamp_moves_when_a_cached_tree_changes(tmp_path):
    image = _entry(tmp_path / "6.1.192")
    before = pagecache.stamp(image)
    assert before == pagecache.stamp(image)
    modules = tmp_path / "6.1.192" / "lib" / "modules" / "6.1.0-57-amd64"
    (modules / "build").symlink_to(tmp_path)  # bcc's headers, fetched after a warm VM booted
    os.utime(modules, ns=(1, 1))
    assert pagecache.stamp(image) != before
