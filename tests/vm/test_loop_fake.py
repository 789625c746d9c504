"""The host-guest loop, run through a fake vng (tests/vm/fakevng.py) in seconds: no kernel boots.

Each test runs a real pytest session with ``--kernel IMAGE`` in a subprocess;
the launcher starts the fake instead of vng (``HARNESS_VNG``), and the fake
runs the real guest agent on this host. What is under test is the host side
and the agent: dispatch, report replay, running the next test ahead, a VM
that dies, hangs or speaks another protocol, boot failures, and reaping. Real kernels are booted by the
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
from urllib.parse import unquote

import pytest

from harness import ids, protocol
from harness.vm import preflight
from harness.vm.launcher import VM
from harness.vm.seam import VMConfig, VMLost
from tests.vmtools import ROOT, run_pytest, vm_processes

pytestmark = pytest.mark.slow  # pytest sessions through the fake vng: root, seconds a test

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


IDS = "tests/vm/fakecases_ids.py"


def test_every_item_kind_sees_in_the_guest_the_id_the_host_reports(tmp_path, _fake_host):
    """Two kernels: each test's node id, name and PYTEST_CURRENT_TEST in the guest carry its kernel,
    as the host reports it; artifacts named after the node id and tmp_path never meet across kernels."""
    releases = [RELEASE, "6.12.0-fakevng"]
    kernels = [a for r in releases for a in ("--kernel", str(bzimage_header(tmp_path / f"bzImage-{r}", r)))]
    basetemp = tmp_path / "results" / "basetemp"  # shared by both guests (--rwdir), as the results are
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    proc = run_pytest([*kernels, "--doctest-modules", f"--basetemp={basetemp}", IDS], tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    reported = {c["nodeid"]: c["kernel"] for c in data["cases"]}
    assert len(reported) == 2 * 6  # a function, two parameters, a method, a unittest method, a doctest
    assert {kernel for kernel in reported.values()} == set(releases)
    for c in data["cases"]:  # the replayed reports carry the kernel once
        assert ids.split(c["case"], releases) == (c["case"], None)
        assert c["nodeid"] == ids.with_kernel(c["case"], c["kernel"])

    written = {unquote(p.name): json.loads(p.read_text()) for p in (tmp_path / "results" / "ids").iterdir()}
    assert set(written) == set(reported)  # one artifact per test and kernel, none overwritten
    for nodeid, kernel in reported.items():
        seen = written[nodeid]
        assert seen["nodeid"] == nodeid
        assert seen["name"] == nodeid.rpartition("::")[2]  # the host's item name: test_x[KERNEL]
        assert seen["current"] == f"{nodeid} (call)"
        tmp = Path(seen["tmp_path"])  # each kernel's own basetemp, kept through the other kernel's run
        assert tmp.parent == basetemp / kernel and (tmp / "mine").read_text() == nodeid
    plain = {Path(written[n]["tmp_path"]).name for n in reported if "::test_plain[" in n}
    assert plain == {"test_plain_6_1_0_fakevng_0", "test_plain_6_12_0_fakevng_0"}  # named after the id


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


def test_a_kernel_that_panics_booting_fails_at_once_not_at_the_boot_timeout(fake):
    """QEMU runs on after an early panic: the console says it, and the harness stops waiting."""
    proc, cases, logs = fake(
        ["--vm-boot-timeout", "600", f"{CASES}::test_after"], timeout=90, FAKEVNG_PANIC_HANG="1"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "kernel panic while booting" in cases["test_after"]["message"]
    assert "PANIC: early exception 0x06" in cases["test_after"]["message"]
    assert len(logs) == 2  # one more try, which panics the same way


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


# -- running ahead (protocol.Run.ahead): the guest starts the next test before its Run --

AHEAD = "tests/vm/fakecases_ahead.py"
SCOPED = [
    "TestScoped::test_one",
    "TestScoped::test_two",
    "test_between",
    "TestUnit::test_a",
    "TestUnit::test_b",
    "test_last",
]


def _events(tmp_path: Path) -> list[str]:
    path = tmp_path / "results" / "events.txt"
    return path.read_text().splitlines() if path.exists() else []


def _outcomes(tmp_path: Path) -> dict[str, str]:
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    return {c["case"].removeprefix(f"{AHEAD}::"): c["outcome"] for c in data["cases"]}


def test_running_ahead_keeps_fixture_scopes(fake, tmp_path):
    proc, _, logs = fake([f"{AHEAD}::{t}" for t in SCOPED])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _outcomes(tmp_path) == dict.fromkeys(SCOPED, "passed")
    # every test after the first started ahead of its Run, and module, class and
    # unittest class fixtures were set up once and torn down when the run left them
    assert _events(tmp_path) == [
        "module setup",
        "class setup",
        "test_one asked",
        "test_two ahead",
        "class teardown",
        "test_between ahead",
        "setUpClass",
        "test_a ahead",
        "unit test_a",
        "test_b ahead",
        "unit test_b",
        "tearDownClass",
        "test_last ahead",
        "module teardown",
    ]
    assert len(logs) == 1


def test_without_exitfirst_the_test_after_a_failure_runs_ahead(fake, tmp_path):
    proc, _, _ = fake([f"{AHEAD}::test_fails", f"{AHEAD}::test_marker"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcomes(tmp_path) == {"test_fails": "failed", "test_marker": "passed"}
    assert _events(tmp_path) == ["test_fails asked", "test_marker ahead", "test_marker ran"]


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail", "1"]])
def test_a_run_that_stops_at_a_failure_never_runs_the_next_test(fake, tmp_path, stop):
    proc, _, _ = fake([*stop, f"{AHEAD}::test_fails", f"{AHEAD}::test_marker"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcomes(tmp_path) == {"test_fails": "failed"}
    assert _events(tmp_path) == ["test_fails asked"]  # test_marker never ran in the guest
    assert "test_marker" not in proc.stdout


def test_stepwise_never_runs_the_test_after_the_failure(tmp_path, _fake_host):
    """--sw stops at the first failure too (it needs the cache, which run_pytest switches off)."""
    image = bzimage_header(tmp_path / "bzImage", RELEASE)
    cmd = [sys.executable, "-m", "pytest", "-o", f"cache_dir={tmp_path / 'cache'}", "--sw"]
    cmd += ["--results-dir", str(tmp_path / "results"), "--kernel", str(image)]
    cmd += [f"{AHEAD}::test_fails", f"{AHEAD}::test_marker"]
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # pytest's "interrupted"
    assert "Interrupted: Test failed, continuing from this test next run." in proc.stdout
    assert _outcomes(tmp_path) == {"test_fails": "failed"}
    assert _events(tmp_path) == ["test_fails asked"]
    assert vm_processes(tmp_path / "results") == []


@pytest.fixture
def fake_vm(tmp_path, _fake_host, monkeypatch):
    """A VM over the fake vng, driven by hand; yields (vm, its results directory)."""
    monkeypatch.setenv("HARNESS_VNG", str(FAKE))

    class Kernel:
        name = RELEASE
        image = bzimage_header(tmp_path / "bzImage", RELEASE)

    results = tmp_path / "results"
    results.mkdir()
    cfg = VMConfig(log_dir=tmp_path / "logs", results_dir=results, run_ahead=True)
    vm = VM(Kernel, cfg, ROOT)
    args = ["-p", "no:cacheprovider", "--harness-guest-kernel", RELEASE, "--rootdir", str(ROOT)]
    vm.start(args, [f"{AHEAD}::{t}" for t in ("test_between", "test_last", "test_marker")])
    try:
        yield vm
    finally:
        vm.close()
        assert vm_processes(results) == []


def test_quit_while_a_test_runs_ahead_discards_it(fake_vm, tmp_path):
    done = fake_vm.run(f"{AHEAD}::test_between", f"{AHEAD}::test_marker")
    # three phases that passed with nothing to show: compact (protocol.compact_report)
    assert [r[protocol.COMPACT] for r in done.reports] == ["setup", "call", "teardown"]
    fake_vm.close()  # Quit: the host stopped, test_marker was never asked for
    assert fake_vm.proc is not None and fake_vm.proc.returncode == 0
    assert _events(tmp_path) == [
        "module setup",
        "test_between asked",
        "test_marker ahead",
        "test_marker ran",
        "module teardown",
    ]
    console = fake_vm.log_path.read_text()
    assert (
        f"{AHEAD}::test_marker ran ahead, but the host stopped before it; its reports are discarded"
        in console
    )


def test_a_run_that_does_not_name_the_announced_test_is_a_protocol_error(fake_vm, tmp_path):
    fake_vm.run(f"{AHEAD}::test_between", f"{AHEAD}::test_marker")
    with pytest.raises(VMLost) as lost:
        fake_vm.run(f"{AHEAD}::test_last")
    assert lost.value.reason == (
        f"guest agent failed: protocol out of step: {AHEAD}::test_marker was announced as the next "
        f"test (Run.next, with ahead) and ran ahead, but the host then sent "
        f"Run(nodeid='{AHEAD}::test_last', next=None, ahead=True)"
    )
    assert not fake_vm.alive


def test_a_vm_that_dies_in_a_test_run_ahead_is_lost_for_that_test(fake):
    # test_kills_vm starts (and kills the VM) while the host still replays test_passes; the
    # host must report the loss for it, not boot a fresh VM for it when it finds this one dead
    proc, cases, logs = fake([f"{CASES}::test_passes", f"{CASES}::test_kills_vm", f"{CASES}::test_after"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert cases["test_passes"]["outcome"] == "passed"
    assert cases["test_kills_vm"]["vm_lost"] == "VM exited (vng exit status -9)"
    assert cases["test_after"]["outcome"] == "passed"
    assert len(logs) == 2
