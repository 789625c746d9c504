"""Fast tests of the harness's small parts: protocol, splat detection, KVM choice, xdist scopes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import protocol, splat
from harness.plugin.scheduler import KernelScheduling
from harness.vm import accel


def test_protocol_round_trip():
    msg = protocol.Done(nodeid="cases/t.py::x[6.1.192-3]", reports=[{"when": "call"}])
    line = protocol.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == msg


@pytest.mark.parametrize("line", [b"garbage\n", b'{"type": "Nope", "v": 1}\n', b"[1]\n"])
def test_protocol_rejects_foreign_lines(line):
    with pytest.raises(protocol.ProtocolError, match="not a harness message"):
        protocol.decode(line)


def test_a_phase_that_passed_with_nothing_to_show_travels_compact():
    def report(**kw):
        return pytest.TestReport(
            "t.py::x[6.1.192-3]", ("t.py", 1, "x"), {"x": 1}, "passed", None, "call", **kw
        )

    plain = report(duration=0.25, start=1.0, stop=1.25)
    assert protocol.compact_report(plain) == {"passed": "call", "duration": 0.25, "start": 1.0, "stop": 1.25}
    assert len(protocol.encode(protocol.Done("x", [protocol.compact_report(plain)]))) < 120
    # anything the host could not rebuild from its own item goes whole
    assert protocol.compact_report(report(sections=[("Captured stdout call", "hi")])) is None
    assert protocol.compact_report(report(user_properties=[("k", "v")])) is None
    assert protocol.compact_report(report(wasxfail="reason")) is None  # an XPASS
    failed = report()
    failed.outcome, failed.longrepr = "failed", "assert 1 == 2"
    assert protocol.compact_report(failed) is None
    skipped = report()
    skipped.outcome, skipped.longrepr = "skipped", ("t.py", 1, "Skipped: no")
    assert protocol.compact_report(skipped) is None


def test_protocol_rejects_other_version():
    with pytest.raises(protocol.ProtocolError, match="different harness versions"):
        protocol.decode(b'{"type": "Quit", "v": 99}\n')


PANIC = """\
[   50.0] sysrq: Trigger a crash
[   50.0] Kernel panic - not syncing: sysrq triggered crash
[   50.0] CPU: 1 PID: 187 Comm: python3 Not tainted 6.1.0-56-amd64
[   50.0] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---
[   51.0] unrelated line after the end marker""".splitlines()


def test_splat_takes_report_up_to_its_end_marker():
    found = splat.find(["[ 1.0] boot ok", *PANIC])
    assert found.splitlines()[0].endswith("Kernel panic - not syncing: sysrq triggered crash")
    assert "end Kernel panic" in found and "unrelated" not in found
    assert splat.classify(PANIC) == "kernel panic"


def test_splat_finds_warn_and_ignores_clean_logs():
    assert splat.find(["[ 2.0] bpf: loaded", "[ 2.1] audit: ok"]) is None
    assert splat.find(["WARNING: CPU: 0 PID: 1 at kernel/bpf/core.c:1 x"]).startswith("WARNING: CPU: 0")
    assert splat.classify(["[ 1.0] reboot: Power down"]) == "VM exited"


def test_kvm_needs_device_and_cpu_flags(tmp_path):
    dev = tmp_path / "kvm"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 svm\n")
    assert accel.detect(str(dev), str(cpuinfo)).name == "tcg"  # no device
    dev.write_bytes(b"")
    assert accel.detect(str(dev), str(cpuinfo)) == accel.Accel("kvm", f"{dev} is usable and the CPU has svm")
    cpuinfo.write_text("flags\t\t: fpu sse2\n")  # device opens, CPU cannot virtualise
    assert "neither vmx nor svm" in accel.detect(str(dev), str(cpuinfo)).reason


def test_accel_override(monkeypatch):
    monkeypatch.setenv("HARNESS_ACCEL", "kvm")
    assert accel.choose("auto").name == "kvm"
    assert accel.choose("tcg") == accel.Accel("tcg", "forced")
    monkeypatch.setenv("HARNESS_ACCEL", "xen")
    with pytest.raises(ValueError, match="not one of auto, kvm, tcg"):
        accel.choose("auto")


class _Config:
    def getvalue(self, name):
        return ["popen", "popen"] if name == "tx" else None

    def getoption(self, name, default=None):
        return default


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("cases/test_maps.py::test_origin[6.1.192-3]", "6.1.192-3"),
        ("cases/test_maps.py::test_types[hash-6.12.117-1.deb12u1]", "6.12.117-1.deb12u1"),
        ("cases/test_maps.py::test_types[hash-6.1.192-1]", "6.1.192-1"),
        ("cases/test_maps.py::test_types[lru-6.1.192-3]", "6.1.192-3"),
        ("tests/vm/test_units.py::test_plain", "tests/vm/test_units.py::test_plain"),
    ],
)
def test_xdist_scope_is_the_kernel(nodeid, scope):
    sched = KernelScheduling(_Config(), kernels=["6.1.192-3", "6.1.192-1", "6.12.117-1.deb12u1"])
    assert sched._split_scope(nodeid) == scope


def test_xdist_shards_a_kernel_over_spare_workers():
    sched = KernelScheduling(_Config(), kernels=["6.1.192-3"], shards=2)
    scopes = {sched._split_scope(f"cases/t.py::test_{i}[6.1.192-3]") for i in range(40)}
    assert scopes == {"6.1.192-3#0", "6.1.192-3#1"}


def test_vm_stop_and_minus_k_take_the_exact_name_an_upstream_version_or_a_series():
    from harness.ids import names_kernel

    for spec in ("6.1.192-3", "6.1.192", "6.1"):
        assert names_kernel(spec, "6.1.192-3"), spec
    for spec in ("6.1.19", "6.1.192-2", "6.12", "7", "2", "192"):
        assert not names_kernel(spec, "6.1.192-3"), spec


def test_the_guest_side_imports_nothing_of_the_plugin_or_the_hosts_vm_package():
    """What runs in the VM (harness.guest) loads the protocol, the shared modules and the BPF
    toolkit only: the plugin's modules reach a warm VM's fork server as data (Serve.preload)."""
    probe = (
        "import sys, harness.guest.agent, harness.guest.forkserver, harness.guest.cleanup; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('harness'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "harness.guest.forkserver" in loaded
    assert [m for m in loaded if m.startswith(("harness.plugin", "harness.vm"))] == []
