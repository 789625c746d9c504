"""The host-guest loop, run through a fake vng (tests/vm/fakevng.py) in seconds: no kernel boots.

Each test runs a real pytest session with ``--kernel IMAGE`` in a subprocess;
the launcher starts the fake instead of vng (``HARNESS_VNG``), and the fake
runs the real guest agent on this host. What is under test is the host side
and the agent: dispatch, report replay, a VM that dies, hangs or speaks
another protocol, boot failures, and reaping. Real kernels are booted by the
tests marked ``vm`` (tests/vm/test_vm_lost.py has the same situations on a
real guest).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.vm import preflight, protocol
from tests.vmtools import ROOT, run_pytest, vm_processes

FAKE = Path(__file__).with_name("fakevng.py")
CASES = "tests/vm/fakecases.py"
RELEASE = "6.1.0-fakevng"


def bzimage_header(path: Path, release: str) -> Path:
    """A file with just the x86 boot header harness.kernels reads: the fake boots nothing."""
    head = bytearray(0x8000)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x400)  # version string at 0x200 + 0x400
    text = f"{release} (fakevng) #1 SMP\0".encode()
    head[0x600 : 0x600 + len(text)] = text
    path.write_bytes(bytes(head))
    return path


@pytest.fixture(scope="module")
def _fake_host():
    absent = preflight.missing()
    if absent:
        pytest.skip(f"the plugin refuses --kernel on this host, fake vng or not: {preflight.message(absent)}")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the fake vng needs a private mount namespace (root): {probe.stderr.strip()}")


@pytest.fixture
def fake(tmp_path, _fake_host):
    """run(args, **env): a pytest session over the fake; returns (process, cases by name, console logs)."""
    image = bzimage_header(tmp_path / "bzImage", RELEASE)

    def run(args: list[str], timeout: float = 120, **extra_env: str):
        env = {**os.environ, "HARNESS_VNG": str(FAKE), **extra_env}
        proc = run_pytest(["--kernel", str(image), *args], tmp_path, timeout=timeout, env=env)
        results = tmp_path / "results"
        data = json.loads((results / "results.json").read_text())
        cases = {c["case"].split("::")[1]: c for c in data["cases"]}
        assert all(c["kernel"] == RELEASE for c in data["cases"])
        logs = sorted((results / "vm-logs").glob(f"{RELEASE}-*.console.log"))
        assert vm_processes(results) == [], "a VM process outlived the run"
        return proc, cases, logs

    return run


def _mounts() -> list[str]:
    return Path("/proc/self/mounts").read_text().splitlines()


def test_reports_are_replayed_with_outcomes_and_tracebacks(fake, tmp_path):
    tests = ["test_passes", "test_fails", "test_skips", "test_setup_errors", "test_prints_noise"]
    mounts = _mounts()
    proc, cases, logs = fake([*(f"{CASES}::{t}" for t in tests), "-rs"])
    assert _mounts() == mounts  # the agent's bpffs and cgroup2, the fake's /tmp: all in its namespace
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert {name: c["outcome"] for name, c in cases.items()} == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_skips": "skipped",
        "test_setup_errors": "error",
        "test_prints_noise": "passed",
    }
    # assertion rewriting happened in the guest; the traceback and captured output reached the host
    assert cases["test_fails"]["message"] == "assert 42 == 43"
    line = (ROOT / CASES).read_text().splitlines().index("    assert answer == 43") + 1
    assert f"{CASES}:{line}: AssertionError" in out and ">       assert answer == 43" in out
    assert "output of the failing test" in out
    assert "RuntimeError: the fixture broke" in out
    assert cases["test_skips"]["skip_reason"] == "not on this kernel"
    # written through --rwdir from inside the guest's private mount namespace
    artifact = tmp_path / "results" / f"artifact-{RELEASE}.txt"
    assert artifact.read_text() == "written in the guest"
    assert len(logs) == 1  # one boot served them all


def test_a_killed_vm_is_lost_and_the_next_test_boots_a_fresh_one(fake):
    proc, cases, logs = fake([f"{CASES}::test_kills_vm", f"{CASES}::test_after"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    lost = cases["test_kills_vm"]
    assert lost["outcome"] == "vm-lost" and lost["vm_lost"] == "VM exited (vng exit status -9)"
    assert cases["test_after"]["outcome"] == "passed"
    assert len(logs) == 2  # a boot for each
    summary = proc.stdout.splitlines()[-1]
    assert "1 passed" in summary and "1 vm lost" in summary, summary  # its own category


def test_a_hanging_test_is_lost_by_timeout_and_its_vm_reaped(fake):
    started = time.monotonic()
    proc, cases, logs = fake(
        ["--vm-test-timeout", "2", f"{CASES}::test_hangs", f"{CASES}::test_after"], timeout=55
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - started < 55  # the 60 s sleep did not run out
    assert cases["test_hangs"]["vm_lost"].startswith("no answer within 2 s")
    assert cases["test_after"]["outcome"] == "passed"
    assert len(logs) == 2


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (
            "test_sends_other_version",
            f"protocol error: message version 1, expected {protocol.VERSION}: "
            "host and guest run different harness versions",
        ),
        ("test_sends_garbage", "protocol error: not a harness message: b'garbage on the channel\\n'"),
    ],
)
def test_a_stranger_on_the_channel_loses_the_vm_with_the_reason(fake, case, reason):
    proc, cases, logs = fake([f"{CASES}::{case}", f"{CASES}::test_after"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert cases[case]["vm_lost"] == reason
    assert cases["test_after"]["outcome"] == "passed"
    assert len(logs) == 2


def test_output_on_the_channel_before_the_guest_runs_is_console(fake):
    proc, cases, logs = fake([f"{CASES}::test_after"], FAKEVNG_STDOUT="vng: a line of its own")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[stdout] vng: a line of its own" in logs[0].read_text()


def test_a_guest_of_another_harness_version_fails_the_boot_once(fake):
    other = json.dumps({"type": "Ready", "v": 1})
    proc, cases, logs = fake([f"{CASES}::test_passes", f"{CASES}::test_after"], FAKEVNG_STDOUT=other)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert cases["test_passes"]["vm_lost"] == "boot failed"
    assert "host and guest run different harness versions" in cases["test_passes"]["message"]
    assert cases["test_after"]["vm_lost"] == f"kernel {RELEASE} did not boot earlier in this run"
    assert len(logs) == 1  # not retried: a second boot would meet the same guest


def test_a_guest_that_dies_booting_gets_one_more_try(fake):
    proc, cases, logs = fake([f"{CASES}::test_after"], FAKEVNG_DIE="1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{RELEASE} died while booting; trying once more" in out
    assert cases["test_after"]["vm_lost"] == "boot failed twice"
    assert "Kernel panic - not syncing: FAKEVNG_DIE is set" in cases["test_after"]["message"]
    assert len(logs) == 2


def _wait_for(proc: subprocess.Popen, text: str, timeout: float) -> None:
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in "".join(lines):
            return
        time.sleep(0.2)
    raise AssertionError(f"never saw {text!r}:\n{''.join(lines)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_no_vm_outlives_pytest(tmp_path, _fake_host, sig):
    """Interrupted mid-test, pytest reaps its VM; killed outright, its reaper does."""
    results = tmp_path / "results"
    image = bzimage_header(tmp_path / "bzImage", RELEASE)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--results-dir", str(results)]
    cmd += ["--kernel", str(image), f"{CASES}::test_hangs"]
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for(proc, " up in ", timeout=60)
        time.sleep(1)  # the test is sleeping in the guest now
        assert vm_processes(results), "the fake VM should be running"
        proc.send_signal(sig)
        proc.wait(30)
        if sig == signal.SIGINT:
            assert proc.returncode == 2  # pytest's "interrupted"
        deadline = time.monotonic() + 30
        while vm_processes(results) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert vm_processes(results) == []
    finally:
        proc.kill()
        proc.wait()
        for pid in vm_processes(results):
            os.kill(pid, signal.SIGKILL)
