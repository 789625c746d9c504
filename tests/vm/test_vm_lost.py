"""The harness boots real Debian kernels: panics, hangs, splats and interrupts are reported and reaped.

These tests boot VMs (about 15-30 s a boot under TCG); each pytest run
in a subprocess serves several cases from one booted VM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.vmtools import ROOT, junit_outcomes, require_vm_host, run_pytest, vm_processes

pytestmark = pytest.mark.vm
CASES = "tests/vmcases/vm_behaviour.py"


@pytest.fixture(autouse=True)
def _vm_host():
    require_vm_host()


def test_misbehaving_guest_is_reported_and_run_goes_on(tmp_path):
    """One run on 6.1: a failure, noise, a WARN, a panic and a hang, each reported; nothing left."""
    proc = run_pytest(["--kernel", "6.1", "--vm-test-timeout", "30", CASES, "-k", "not sleeps"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    results = junit_outcomes(tmp_path / "junit.xml")
    by_name = {nodeid.split("::")[1]: r for nodeid, r in results.items()}
    kernel = next(iter(by_name)).split("[")[1].rstrip("]")
    assert kernel.startswith("6.1."), by_name
    assert by_name[f"test_passes[{kernel}]"][0] == "passed"
    assert by_name[f"test_module_autoload_and_udev_tools[{kernel}]"] == ("passed", "")
    assert by_name[f"test_system_trees_come_through_the_page_cache[{kernel}]"] == ("passed", "")
    console = sorted((tmp_path / "results" / "vm-logs").glob("*.console.log"))[0].read_text()
    assert "--append PATH=" in console.splitlines()[0]  # booted with the init shims (the default)
    artifact = tmp_path / "results" / f"artifact-{kernel}.txt"
    assert artifact.read_text().startswith("6.1.0-")  # the guest's release, written from inside
    # assertion rewriting happened in the guest and the explanation reached the host
    outcome, message = by_name[f"test_fails[{kernel}]"]
    assert outcome == "failed" and "assert 42 == 43" in message
    assert by_name[f"test_prints_noise[{kernel}]"][0] == "passed"
    outcome, message = by_name[f"test_warn_splat[{kernel}]"]
    assert outcome == "failed" and "WARNING: CPU: 0 PID: 1 at selftest/injected.c" in message
    outcome, message = by_name[f"test_panic[{kernel}]"]
    assert outcome == "failed" and "VM lost: kernel panic" in message
    assert "sysrq triggered crash" in message  # the panic text from the console
    assert by_name[f"test_after_panic[{kernel}]"][0] == "passed"
    outcome, message = by_name[f"test_hang[{kernel}]"]
    assert outcome == "failed" and "VM lost: no answer within 30 s" in message
    assert by_name[f"test_after_hang[{kernel}]"][0] == "passed"
    assert "2 vm lost" in out.splitlines()[-2]  # its own category in the summary line
    # three boots: the first, after the panic, after the hang; each console kept
    logs = sorted((tmp_path / "results" / "vm-logs").glob(f"{kernel}-*.console.log"))
    assert len(logs) == 3, logs
    assert "Kernel panic - not syncing" in "".join(log.read_text() for log in logs)
    assert vm_processes(tmp_path / "results") == []


def test_full_init_boots_with_virtme_ngs_own_tmpfiles_and_udev(tmp_path):
    proc = run_pytest(["--kernel", "6.1", "--vm-full-init", CASES, "-k", "autoload"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    (outcome,) = junit_outcomes(tmp_path / "junit.xml").values()
    assert outcome == ("passed", "")
    console = next((tmp_path / "results" / "vm-logs").glob("*.console.log")).read_text()
    assert "--append PATH=" not in console.splitlines()[0]


def _wait_for(proc, text: str, timeout: float) -> str:
    """Read proc's output until text appears; the rest is read by a thread so nothing blocks."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in "".join(lines):
            return "".join(lines)
        time.sleep(0.5)
    raise AssertionError(f"never saw {text!r}:\n{''.join(lines)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_no_vm_outlives_pytest(tmp_path, sig):
    """Interrupted mid-test, pytest reaps its VM; killed outright, the guest powers itself off."""
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--results-dir",
        str(results),
        "--kernel",
        "6.1",
        f"{CASES}::test_sleeps_long",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(proc, " up in ", timeout=400)
        time.sleep(2)  # the test is sleeping inside the guest now
        assert vm_processes(results), "the VM should be running"
        proc.send_signal(sig)
        proc.wait(60)
        if sig == signal.SIGINT:
            assert proc.returncode == 2  # pytest's "interrupted"
            assert vm_processes(results) == []
        else:
            # nobody reaps: the guest agent sees its channel close and powers off
            deadline = time.monotonic() + 90
            while vm_processes(results) and time.monotonic() < deadline:
                time.sleep(1)
            assert vm_processes(results) == []
    finally:
        proc.kill()
        proc.wait()
        for pid in vm_processes(results):
            os.kill(pid, signal.SIGKILL)
