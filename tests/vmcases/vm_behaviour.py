"""Guest-side cases for the harness's own tests: each makes the VM behave in one way.

Not collected by ``pytest tests/`` (the name does not match test_*.py);
tests/test_vm.py runs this file explicitly with ``--kernel``.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def test_passes(bpf_kernel):
    # in a VM, the fixture carries the catalog name, not the release
    assert bpf_kernel != os.uname().release
    assert Path("/sys/fs/bpf").is_dir()
    # artifacts written here outlive the VM
    (Path(os.environ["HARNESS_RESULTS_DIR"]) / f"artifact-{bpf_kernel}.txt").write_text(os.uname().release)


def test_module_autoload_and_udev_tools():
    """What udev's coldplug would have done is not needed: a driver still loads on demand (the kernel
    calls modprobe for rtnl-link-dummy), the loopback is up, udevd runs and handles the devices a
    test adds (it starts beside the interpreter), and the tests see udev's and systemd's real
    tools, not the harness's init shims (harness/vm/initshims)."""
    ping = subprocess.run(["udevadm", "control", "--ping", "--timeout=60"], capture_output=True, text=True)
    assert ping.returncode == 0, ping.stderr
    done = subprocess.run(["ip", "link", "add", "hdummy0", "type", "dummy"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        assert Path("/sys/class/net/hdummy0").exists()
        assert Path("/sys/module/dummy").exists()
        subprocess.run(["udevadm", "settle", "--timeout=60"], check=True)
        ifindex = Path("/sys/class/net/hdummy0/ifindex").read_text().strip()
        assert Path(f"/run/udev/data/n{ifindex}").exists()  # udevd's record of the add event
    finally:
        subprocess.run(["ip", "link", "del", "hdummy0"], check=True)
    assert "initshims" not in os.environ["PATH"]
    assert "initshims" not in (shutil.which("udevadm") or "")
    assert Path("/dev/virtio-ports").is_dir()
    assert int(Path("/sys/class/net/lo/flags").read_text(), 16) & 1  # IFF_UP: init's `ip`, shimmed


def _mounts() -> dict[str, tuple[str, str]]:
    """mount point -> (type, options), the last mount on each point."""
    found = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, kind, options = line.split()[:4]
        found[point] = (kind, options)
    return found


def _loose(options: str) -> bool:
    """9p's cache=loose, as /proc/mounts shows it: by name (6.1: ``loose``) or as its flags (7.3: ``cache=0xf``)."""
    return bool({"loose", "cache=loose", "cache=0xf"} & set(options.split(",")))


def test_system_trees_come_through_the_page_cache():
    """harness.vm.pagecache: /usr, the interpreter and the kernel's cache entry are 9p shares with
    cache=loose; /usr stays writable, the modules stay linked, the project stays uncached."""
    mounts = _mounts()
    assert mounts["/usr"][0] == "overlay" and "lowerdir=/run/harness-usr/lower" in mounts["/usr"][1]
    assert mounts["/run/harness-usr/lower"][0] == "9p" and _loose(mounts["/run/harness-usr/lower"][1])
    # small 9p messages before 6.0, where each request carries buffers of the whole msize
    msize = "msize=16384" if int(os.uname().release.split(".")[0]) < 6 else "msize=512000"
    assert msize in mounts["/run/harness-usr/lower"][1].split(","), mounts["/run/harness-usr/lower"]
    prefix = str(Path(sys.base_prefix).resolve())
    if not prefix.startswith("/usr/"):
        assert mounts[prefix][0] == "9p" and _loose(mounts[prefix][1])
    modules = Path("/lib/modules") / os.uname().release
    assert (modules / "modules.dep").is_file()
    entry = str(modules.resolve().parent.parent.parent)  # <entry>/lib/modules/<release>
    assert mounts[entry][0] == "9p" and _loose(mounts[entry][1])
    assert not _loose(mounts["/"][1])  # the project, the virtualenv: read afresh
    probe = Path("/usr/harness-probe")  # the overlay's upper layer, a tmpfs: nothing reaches the host
    probe.write_text("guest")
    probe.unlink()


def test_fails():
    answer = 6 * 7
    assert answer == 43


def test_prints_noise():
    # stray output, even protocol-shaped, must not disturb the channel
    os.write(1, b'{"type": "Done", "v": 1, "nodeid": "x", "reports": []}\n')
    print("noise " * 2000)


def test_warn_splat():
    # An injected record: the Debian kernels have no lkdtm to raise a real WARN.
    # It exercises the whole path: kernel log -> agent -> failed test with the text.
    Path("/dev/kmsg").write_text("<4>WARNING: CPU: 0 PID: 1 at selftest/injected.c:1 harness_selftest\n")


def test_panic():
    Path("/proc/sysrq-trigger").write_text("c")


def test_after_panic(bpf_kernel):
    assert bpf_kernel


def test_hang():
    # suspend-to-idle with no wake-up source: the whole guest stops answering
    Path("/sys/power/state").write_text("freeze")


def test_after_hang(bpf_kernel):
    assert bpf_kernel


def test_sleeps_long():
    time.sleep(600)
