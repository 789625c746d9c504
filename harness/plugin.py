"""The pytest plugin: ``--kernel`` options, the kernel parameter, and routing tests into VMs.

Without ``--kernel`` tests run on the running kernel. With ``--kernel 6.1
--kernel 6.12`` every test is parametrized by kernel (``test_x[6.12.117]``) and
runs inside a throwaway VM booted with that kernel; reports come back and are
replayed on the host as if the test had run here. Inside the VM the same
plugin runs with the hidden ``--harness-guest-kernel``, so the guest
collects the same test ids.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

import pytest

from harness import accel, gates, preflight, results
from harness.fixtures import *  # noqa: F403 - the fixtures cases use
from harness.libbpf import BPFError
from harness.runner import KERNEL_PARAM, Runner, kernel_of, note
from harness.vm import VMConfig

KERNELS = pytest.StashKey[dict]()
RUNNER = pytest.StashKey[Runner]()


def pytest_addoption(parser, pluginmanager):
    for module in (gates, results):
        if not pluginmanager.is_registered(module):
            pluginmanager.register(module, f"bpf-harness-{module.__name__.rsplit('.', 1)[1]}")
    group = parser.getgroup("bpf-harness", "kernels in throwaway VMs")
    group.addoption("--kernel", action="append", dest="bpf_kernels", default=[], metavar="SPEC",
                    help="run every test in a VM booted with this kernel: a catalog version "
                         "('6.12' = newest 6.12.y, '6.12.111' exact, '6.8' Ubuntu mainline) or a "
                         "path to a bzImage or a built kernel tree; repeat for several kernels")
    group.addoption("--accel", choices=accel.CHOICES, default="auto",
                    help="kvm, tcg, or auto: KVM only where it really works (default auto)")
    group.addoption("--vm-memory", default="1G", help="guest memory (default 1G)")
    group.addoption("--vm-cpus", type=int, default=None,
                    help="guest vCPUs (default: the host's CPUs shared among the VMs that run "
                         "at once, at most 2)")
    group.addoption("--vm-boot-timeout", type=float, default=None, metavar="SECONDS",
                    help="give up on a boot after this long (default 60 with KVM, 300 with TCG)")
    group.addoption("--vm-test-timeout", type=float, default=300.0, metavar="SECONDS",
                    help="a test that runs longer is ended as 'VM lost' (default 300)")
    group.addoption("--results-dir", type=Path, default=Path("results"),
                    help="console logs and result files go here (default ./results)")
    group.addoption("--offline", action="store_true",
                    help="use only cached kernels; never download")
    group.addoption("--debian-mirror", default=None, metavar="URL",
                    help="Debian archive URL(s) for hosts whose apt cannot fetch Debian kernels "
                         "(or HARNESS_DEBIAN_MIRROR)")
    group.addoption("--mainline-mirror", default=None, metavar="URL",
                    help="Ubuntu mainline archive URL (or HARNESS_MAINLINE_MIRROR)")
    group.addoption("--harness-guest-kernel", default=None, help=argparse.SUPPRESS)


def _vm_mode(config) -> bool:
    return bool(config.option.bpf_kernels) and config.option.harness_guest_kernel is None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Resolve (and fetch) kernels before any worker starts: errors are usage errors."""
    if not _vm_mode(config):
        return None
    from harness import kernels  # noqa: PLC0415 - needs requests etc. only in VM mode

    absent = preflight.missing()
    if absent:
        raise pytest.UsageError(preflight.message(absent))
    resolved = {}
    try:
        for spec in config.option.bpf_kernels:
            kernel = kernels.resolve(
                spec, fetch=not config.option.offline,
                debian_mirror=config.option.debian_mirror,
                mainline_mirror=config.option.mainline_mirror,
                # xdist workers only read the cache the controller filled
                progress=not hasattr(config, "workerinput"))
            resolved[kernel.name] = kernel
    except kernels.KernelError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[KERNELS] = resolved
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "host: run this test on the host even with --kernel")
    if not _vm_mode(config):
        return
    try:
        chosen = accel.choose(config.option.accel)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if chosen.name == "tcg" and config.option.accel == "auto" and not hasattr(config, "workerinput"):
        note(config, f"KVM unusable ({chosen.reason}); VMs run under TCG, "
                     "about 10-20 s a boot (force with --accel)")
    boot_timeout = config.option.vm_boot_timeout or (60.0 if chosen.name == "kvm" else 300.0)
    results = config.option.results_dir.resolve()
    vmcfg = VMConfig(accel=chosen.name, memory=config.option.vm_memory, cpus=_vm_cpus(config),
                     boot_timeout=boot_timeout, test_timeout=config.option.vm_test_timeout,
                     log_dir=results / "vm-logs", results_dir=results)
    config.stash[RUNNER] = Runner(config, config.stash[KERNELS], vmcfg)
    # SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so VMs are reaped
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _vm_cpus(config) -> int:
    """Parallel VMs share the host: under TCG two 2-vCPU guests on 2 cores were no faster
    together than one after the other (bench B3)."""
    if config.option.vm_cpus:
        return config.option.vm_cpus
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    return max(1, min(2, (os.cpu_count() or 1) // workers))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_generate_tests(metafunc):
    config = metafunc.config
    if KERNEL_PARAM not in metafunc.fixturenames or metafunc.definition.get_closest_marker("host"):
        return
    if config.option.harness_guest_kernel:
        names = [config.option.harness_guest_kernel]
    elif _vm_mode(config):
        names = list(config.stash[KERNELS])
    else:
        return
    # session scope: pytest orders tests kernel by kernel, so each boots once
    metafunc.parametrize(KERNEL_PARAM, names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session", autouse=True)
def bpf_kernel(request) -> str:
    """The kernel this test runs on: its catalog name in a VM, else the host's release."""
    return getattr(request, "param", None) or os.uname().release


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With -n, schedule by kernel (unless the user chose another --dist than the default)."""
    if not _vm_mode(config) or config.option.dist != "load":
        return None
    from harness.scheduler import KernelScheduling  # noqa: PLC0415 - xdist is optional

    kernels = list(config.stash[KERNELS])
    shards = max(1, len(config.getvalue("tx")) // len(kernels))
    return KernelScheduling(config, log, kernels=kernels, shards=shards)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    config = item.config
    if not _vm_mode(config) or kernel_of(item) is None:
        return None
    config.stash[RUNNER].run(item, nextitem)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed on a bpf() error carries its errno and verifier log as data."""
    report = yield
    excinfo = call.excinfo
    if excinfo is not None and isinstance(excinfo.value, BPFError):
        report.bpf_errno = excinfo.value.errno_name
        if excinfo.value.log:
            report.verifier_log = "\n".join(excinfo.value.log.splitlines()[-20:])
    return report


def pytest_report_teststatus(report, config):
    if getattr(report, "vm_lost", None) and report.when == "call":
        return "vm lost", "L", ("VM LOST", {"red": True})
    return None


def pytest_sessionfinish(session):
    config = session.config
    runner = config.stash.get(RUNNER, None)
    if runner is not None:
        # interrupted: the test in flight will not finish, so there is nothing to wait for
        runner.close(graceful=session.exitstatus != pytest.ExitCode.INTERRUPTED)
        if hasattr(config, "workeroutput"):
            config.workeroutput["bpf_harness_vms"] = runner.booted


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: gather the VM records of a finished worker."""
    runner = node.config.stash.get(RUNNER, None)
    if runner is not None:
        runner.booted.extend(getattr(node, "workeroutput", {}).get("bpf_harness_vms", []))


def pytest_terminal_summary(terminalreporter, config):
    runner = config.stash.get(RUNNER, None)
    if runner is None or not runner.booted:
        return
    terminalreporter.section("kernels")
    for vm in runner.booted:
        terminalreporter.write_line(
            f"{vm['kernel']:<12} {vm['release']:<28} {vm['accel'].upper()}  boot {vm['boot_seconds']:6.1f} s"
            f"  {vm['console_log']}")
