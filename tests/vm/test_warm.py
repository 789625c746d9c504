"""Warm VMs (pytest --reuse-vm): reruns attach to a kept VM, see edits, start clean; VMs never leak.

The VM tests share boots and run in file order: one warm VM serves the edit,
state and clean-up runs (a, b) and is ended by a run that leaves a program
the harness cannot remove (c); the VM of the next run is stopped by `vm stop
--all` (d); a panic loses the third VM and the same run boots a fourth (e),
which powers itself off after its idle timeout (f); a run killed mid-test
leaves a VM that its idle timeout ends (g). Five boots in all.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.vm import records, warm
from harness.vm.seam import VMConfig
from tests.vmtools import ROOT, junit_outcomes, require_vm_host, vm_processes

CASES = "tests/vmcases/warm_behaviour.py"


@dataclasses.dataclass
class Warm:
    """Runs that share one state directory (so one warm VM) and one results parent."""

    state: Path
    env: dict
    count: int = 0

    def pytest(self, *args: str, cwd: Path = ROOT, timeout: float = 900) -> tuple[int, str, float]:
        self.count += 1
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--kernel", "6.1", "--reuse-vm"]
        cmd += ["--results-dir", str(self.state / "results" / f"run{self.count}"), *args]
        cmd += ["--junitxml", str(self.junit)]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started

    @property
    def junit(self) -> Path:
        return self.state / f"junit-{self.count}.xml"

    def cli(self, *args: str) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "vm", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return proc.returncode, proc.stdout + proc.stderr

    def keepers(self) -> list[int]:
        marker = str(self.state).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if warm.KEEPER_MODULE.encode() in cmdline and marker in cmdline:
                pids.append(int(entry.name))
        return pids

    def nothing_runs(self) -> bool:
        return not self.keepers() and not vm_processes(self.state)


@pytest.fixture(scope="module")
def warm_vms():
    require_vm_host()
    # short: the keeper's Unix socket path must fit in 108 bytes
    state = Path(tempfile.mkdtemp(prefix="hvm-"))
    env = {**os.environ, warm.STATE_ENV: str(state)}
    w = Warm(state, env)
    yield w
    w.cli("stop", "--all")
    assert w.nothing_runs(), (w.keepers(), vm_processes(state))
    shutil.rmtree(state, ignore_errors=True)


# -- without VMs ------------------------------------------------------------------


def test_settings_key_changes_with_what_a_booted_guest_cannot_change(tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"kernel one")
    base = VMConfig(results_dir=tmp_path / "results")
    key = warm.settings_key(image, base)
    assert warm.settings_key(image, VMConfig(results_dir=tmp_path / "results")) == key
    for changed in (
        dataclasses.replace(base, memory="2G"),
        dataclasses.replace(base, cpus=1),
        dataclasses.replace(base, accel="kvm"),
        dataclasses.replace(base, results_dir=tmp_path / "elsewhere"),
    ):
        assert warm.settings_key(image, changed) != key, changed
    image.write_bytes(b"kernel two")
    assert warm.settings_key(image, base) != key


def test_vm_commands_without_warm_vms(tmp_path):
    env = {**os.environ, warm.STATE_ENV: str(tmp_path)}
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    listed = subprocess.run([sys.executable, "-m", "harness", "vm", "list"], **run)
    assert listed.returncode == 0 and "no warm VMs" in listed.stdout
    unsaid = subprocess.run([sys.executable, "-m", "harness", "vm", "stop"], **run)
    assert unsaid.returncode == 2 and "KERNEL (e.g. 6.1) or --all" in unsaid.stderr


def test_records_of_dead_keepers_are_not_listed(tmp_path):
    vm_dir = tmp_path / "vms" / "0123456789abcdef-0"
    vm_dir.mkdir(parents=True)
    not_a_keeper = records.Record(
        pid=os.getpid(),
        kernel="6.1.192-3",
        image="vmlinuz",
        accel="tcg",
        memory="1G",
        cpus=2,
        idle_timeout=900,
    )
    records.save(vm_dir / "record.json", not_a_keeper)
    assert warm.kept_vms(tmp_path / "vms") == []
    assert not (vm_dir / "record.json").exists()


def test_a_run_that_finds_the_vm_busy_takes_the_next_slot_and_says_whose(tmp_path, monkeypatch):
    monkeypatch.setenv(warm.STATE_ENV, str(tmp_path))
    kernel = type("Kernel", (), {"name": "6.1.192-3", "image": tmp_path / "vmlinuz"})()
    first = warm.WarmVM(kernel, VMConfig(), tmp_path)
    slot0, busy = first._claim("k")
    assert (slot0.name, busy) == ("k-0", [])
    second = warm.WarmVM(kernel, VMConfig(), tmp_path)
    slot1, busy = second._claim("k")
    assert slot1.name == "k-1" and busy == [slot0]
    first._release()  # the lock goes with the run
    third = warm.WarmVM(kernel, VMConfig(), tmp_path)
    assert third._claim("k") == (slot0, [])
    second._release()
    third._release()


# -- with VMs, in order ------------------------------------------------------------


@pytest.mark.vm
def test_a_rerun_attaches_to_the_warm_vm_and_sees_an_edit(warm_vms, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    source = (
        "import builtins\n\n"
        "VALUE = {}\n\n\n"
        "def test_value():\n    assert VALUE == 2\n\n\n"
        "def test_no_state_of_an_earlier_run():\n"
        "    assert not hasattr(builtins, 'warm_mark')\n"
        "    builtins.warm_mark = 1\n"
    )
    (project / "test_edit.py").write_text(source.format(1))
    code, out, _ = warm_vms.pytest("test_edit.py", cwd=project)
    assert code == 1, out
    assert "as warm VM" in out and "reusing" not in out, out
    assert "assert 1 == 2" in out and "1 failed, 1 passed" in out, out
    (project / "test_edit.py").write_text(source.format(2))
    code, out, seconds = warm_vms.pytest("test_edit.py", cwd=project)
    assert code == 0 and "2 passed" in out, out
    assert "reusing warm VM" in out and "runs served: 1" in out, out
    print(f"warm rerun of two tests: {seconds:.1f} s wall")
    code, out = warm_vms.cli("list")
    assert code == 0 and "6.1." in out, out
    line = next(line for line in out.splitlines() if "6.1." in line)
    assert line.split()[5] == "2", out  # runs served


@pytest.mark.vm
def test_b_pins_cgroups_programs_files_and_processes_do_not_reach_the_next_run(warm_vms):
    code, out, _ = warm_vms.pytest(f"{CASES}::test_leave_pins_cgroup_and_attached_programs")
    assert code == 0 and "reusing warm VM" in out, out
    assert "removed what this run left" in out, out
    for what in (
        "cgroup /sys/fs/cgroup/harness-warm",
        "pin /sys/fs/bpf/harness-warm-map",
        "harness-warm-link",
        "file /tmp/harness-warm-file",
        "file /tmp/harness-warm-dir",
        "(python",  # the process that escaped with setsid, holding a map
    ):
        assert what in out, out
    code, out, _ = warm_vms.pytest(f"{CASES}::test_nothing_of_an_earlier_run_is_left")
    assert code == 0 and "reusing warm VM" in out and "1 passed" in out, out


@pytest.mark.vm
def test_c_a_program_the_harness_cannot_remove_ends_the_vm(warm_vms):
    code, out, _ = warm_vms.pytest(f"{CASES}::test_leave_a_program_on_the_root_cgroup")
    assert code == 0 and "reusing warm VM" in out, out
    assert "which the harness cannot remove" in out and "'warm_root'" in out, out
    assert "next run boots a fresh one" in out, out
    deadline = time.monotonic() + 60
    while warm_vms.keepers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert warm_vms.nothing_runs()
    code, out, _ = warm_vms.pytest(f"{CASES}::test_root_cgroup_has_no_program")
    assert code == 0 and "as warm VM" in out and "reusing" not in out and "1 passed" in out, out


@pytest.mark.vm
def test_d_vm_stop_all_leaves_no_qemu(warm_vms):
    code, out = warm_vms.cli("list")
    assert code == 0 and "6.1." in out and "no warm VMs" not in out, out
    assert vm_processes(warm_vms.state)  # the VM the last run left warm
    code, out = warm_vms.cli("stop", "--all")
    assert code == 0 and "powered off" in out, out
    assert warm_vms.nothing_runs()
    code, out = warm_vms.cli("list")
    assert "no warm VMs" in out, out


@pytest.mark.vm
def test_e_a_panic_in_a_warm_vm_is_vm_lost_and_the_next_test_boots_fresh(warm_vms):
    code, out, _ = warm_vms.pytest(f"{CASES}::test_panic", f"{CASES}::test_after_panic")
    assert code == 1, out
    assert "1 passed, 1 vm lost" in out, out
    outcomes = {
        nodeid.split("::")[1].split("[")[0]: r for nodeid, r in junit_outcomes(warm_vms.junit).items()
    }
    assert outcomes["test_panic"][0] == "failed" and "VM lost: kernel panic" in outcomes["test_panic"][1], out
    assert out.count("as warm VM") == 2, out  # the first boot, and a fresh one after the panic
    assert len(warm_vms.keepers()) == 1  # the panicked VM's keeper is gone


@pytest.mark.vm
def test_f_an_idle_warm_vm_powers_itself_off(warm_vms):
    code, out, _ = warm_vms.pytest(f"{CASES}::test_after_panic", "--vm-idle-timeout", "5")
    assert code == 0 and "reusing warm VM" in out, out
    deadline = time.monotonic() + 120
    while not warm_vms.nothing_runs() and time.monotonic() < deadline:
        time.sleep(1)
    assert warm_vms.nothing_runs(), (warm_vms.keepers(), vm_processes(warm_vms.state))
    code, out = warm_vms.cli("list")
    assert "no warm VMs" in out, out


@pytest.mark.vm
def test_g_a_killed_run_leaves_a_vm_that_its_idle_timeout_ends(warm_vms):
    """SIGKILL of pytest mid-test: the keeper ends that session in the guest, then powers off when idle."""
    warm_vms.count += 1
    results = warm_vms.state / "results" / f"run{warm_vms.count}"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--kernel", "6.1", "--reuse-vm"]
    cmd += ["--vm-idle-timeout", "20", "--results-dir", str(results), f"{CASES}::test_sleeps_a_while"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=warm_vms.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while not (results / "sleeping").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before its test started"
            time.sleep(0.5)
        assert (results / "sleeping").exists()
    finally:
        proc.kill()
        proc.wait()
    assert warm_vms.keepers() and vm_processes(warm_vms.state)  # the VM outlives its run
    deadline = time.monotonic() + 180
    while not warm_vms.nothing_runs() and time.monotonic() < deadline:
        time.sleep(1)
    assert warm_vms.nothing_runs(), (warm_vms.keepers(), vm_processes(warm_vms.state))
