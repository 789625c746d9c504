"""Host side of a test that runs in a VM: pick the VM, run the case there, replay its reports.

One host process keeps at most one VM: items come kernel by kernel, so each
kernel boots once per process and is shut down when the next kernel's items
begin. With pytest-xdist, every worker is such a process; the scheduler groups
items by kernel so that two workers run two kernels side by side.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
from pathlib import Path

import pytest

from harness import parts, protocol, reportattrs
from harness.plugin.items import KernelItem
from harness.plugin.roles import Role, role
from harness.vm import accel, pyzip, vng
from harness.vm.launcher import VM
from harness.vm.seam import GuestVM, VMBootError, VMConfig, VMLost
from harness.vm.warm import WarmVM

# the guest's own tmpfs, gone with the VM; not under /tmp, which a warm VM cleans after each run
GUEST_CACHE_DIR = "/run/harness-pytest-cache"


def note(config, text: str) -> None:
    """Progress on long waits, on the terminal when there is one."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and role(config) is not Role.WORKER:
        reporter.write_line(f"bpf-harness: {text}")
    else:
        print(f"bpf-harness: {text}", file=sys.stderr, flush=True)


def vm_config(config, run_dir: str | None) -> VMConfig:
    try:
        chosen = accel.choose(config.option.accel)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if chosen.name == "tcg" and config.option.accel == "auto" and role(config) is Role.HOST:
        note(
            config,
            f"KVM unusable ({chosen.reason}); VMs run under TCG, about 10-20 s a boot (force with --accel)",
        )
    for arg in config.option.vm_append:
        if not arg or any(c.isspace() or c in "\"'" for c in arg):
            raise pytest.UsageError(
                f"--vm-append {arg!r}: give one kernel argument per --vm-append, without spaces or quotes"
            )
    boot_timeout = config.option.vm_boot_timeout or (60.0 if chosen.name == "kvm" else 300.0)
    results = Path(run_dir) if run_dir else None
    return VMConfig(
        accel=chosen.name,
        memory=config.option.vm_memory,
        cpus=vm_cpus(config),
        boot_timeout=boot_timeout,
        test_timeout=config.option.vm_test_timeout,
        log_dir=results / "vm-logs" if results else Path("results") / "vm-logs",
        results_dir=results,
        run_ahead=run_ahead(config),
        append=(
            *(vng.FULL_INIT_APPEND if config.option.vm_full_init else vng.APPEND),
            *config.option.vm_append,
        ),
        pvh_boot=os.environ.get("HARNESS_PVH") != "0",  # 0: boot the bzImage, as vng does (bench/warm.py)
        page_cache=os.environ.get("HARNESS_PAGE_CACHE") != "0",  # 0: the whole root uncached, as vng has it
    )


def run_ahead(config) -> bool:
    """Whether the guest may start the next test before the host asks for it (protocol.Run.ahead).

    Only when the host's run cannot stop after a failure: a test the user's run
    would never reach must never run in the guest (its side effects, its splat).
    Measured on 2026-11-28 (warm 6.1 VM, TCG, 2 cores, 200 trivial tests, run-ahead
    on and off in turn in one VM): at load 1.5-2.9 the median gap between results
    fell from 29-36 ms to 22-33 ms; at load 3.2-4.5, another session's QEMU busy on
    one core, it rose from 24-41 ms to 30-52 ms: the guest and the host then share
    the one free core, and running both at once only adds switching. So it needs
    a core for each VM and one for each host process (-n 2 on 2 cores: off)."""
    option = config.option
    stops = (
        option.maxfail  # -x is --maxfail 1
        or getattr(option, "stepwise", False)
        or getattr(option, "stepwise_skip", False)
        or getattr(option, "usepdb", False)
    )
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    return not stops and (os.cpu_count() or 1) >= 2 * workers


class Runner:
    def __init__(self, config, kernels: dict, route):
        self.config = config
        self.kernels = kernels  # name -> harness.kernels.Kernel
        self.route = route
        self.vmcfg = vm_config(config, route.run_dir)
        self.vm: GuestVM | None = None
        self.boot_errors: dict[str, str] = {}
        self.refused: dict[str, str | None] = {}  # item id -> why it cannot run (pytest_bpf_cannot_run)
        self.started_ahead: str | None = None  # the item the VM may have started before its Run

    # -- VMs ----------------------------------------------------------------

    def _guest_args(self, name: str) -> list[str]:
        # the user's own arguments (plugins, ini overrides, doctest options, their conftest's
        # options); the guest agent replaces the tests to collect and what only the host does.
        # The rootdir and ini file are the host's, so test ids are the same on both sides.
        config = self.config
        extra = [arg for args in config.hook.pytest_bpf_guest_args(config=config) for arg in args]
        args = [
            *self.route.guest_args,
            *extra,
            "--harness-guest-kernel",
            name,
            "--rootdir",
            str(config.rootpath),
        ]
        if config.inipath:
            args += ["-c", str(config.inipath)]
        if not config.pluginmanager.is_blocked("cacheprovider"):
            args += ["-o", f"cache_dir={GUEST_CACHE_DIR}"]
        return args

    def vm_for(self, name: str, session) -> GuestVM:
        if self.vm is not None and self.vm.kernel.name == name and self.vm.alive:
            return self.vm
        self.close()
        kernel = self.kernels[name]
        if not self.vmcfg.pyzip:
            self.vmcfg = self._with_pyzip(self.vmcfg)
        if not self.config.option.reuse_vm:  # a warm VM says itself whether it boots
            note(
                self.config,
                f"booting {name} ({self.vmcfg.accel.upper()}, {self.vmcfg.cpus} vCPU, {self.vmcfg.memory}) ...",
            )
        mine = [
            item.case
            for item in session.items
            if isinstance(item, KernelItem) and item.kernel == name and not self.cannot_run(item)
        ]
        cases = list(dict.fromkeys(case.nodeid for case in mine))
        files = list(dict.fromkeys(str(case.path) for case in mine))
        cwd = self.config.invocation_params.dir
        vm: GuestVM
        if self.config.option.reuse_vm:
            idle = self.config.option.vm_idle_timeout
            vm = WarmVM(kernel, self.vmcfg, cwd, idle_timeout=idle, say=lambda text: note(self.config, text))
        else:
            vm = VM(kernel, self.vmcfg, cwd)
        plugins = entry_point_plugins(self.config)
        ready = vm.start(
            self._guest_args(name),
            cases,
            plugins,
            initial=self.route.initial,
            files=files,
            ahead=ahead_plugins(self.config, plugins),
        )
        self.vm = vm
        note(
            self.config,
            f"{name} up in {vm.boot_seconds:.1f} s: {ready.release} "
            f"(guest uptime {ready.uptime:.1f} s), console log {vm.log_path}",
        )
        self.config.hook.pytest_bpf_vm_booted(config=self.config, boot=vm.boot_record())
        return vm

    def _with_pyzip(self, vmcfg: VMConfig) -> VMConfig:
        try:
            return dataclasses.replace(vmcfg, pyzip=(pyzip.harness_zip(), pyzip.ensure()))
        except OSError as exc:  # an unwritable cache costs speed, not correctness
            note(
                self.config,
                f"guest imports go over 9p (slower): cannot build the guest's byte-compiled modules: {exc}",
            )
            return vmcfg

    def close(self, graceful: bool = True) -> None:
        """Power the VM off (session teardown runs in the guest), or just kill it."""
        if self.vm is not None:
            if graceful:
                self.vm.close()
            else:
                self.vm.kill()
            self.vm = None

    # -- tests --------------------------------------------------------------

    def cannot_run(self, item) -> str | None:
        if item.nodeid not in self.refused:
            self.refused[item.nodeid] = self.config.hook.pytest_bpf_cannot_run(item=item)
        return self.refused[item.nodeid]

    def run(self, item, nextitem) -> None:
        """Run a KernelItem in its VM and log the guest's reports as the item's own."""
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        started = time.time()
        refused = self.cannot_run(item)
        try:
            reports = synthetic(item, refused, started) if refused else self._run(item, nextitem)
        except VMLost as lost:
            self.vm = None  # killed by VM.run; the next test boots a fresh one
            reports = synthetic(item, str(lost), started, vm_lost=lost.reason)
        for report in reports:
            report.nodeid = item.nodeid
            report.location = item.location
            reportattrs.set_kernel(report, item.kernel)
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def _run(self, item, nextitem) -> list[pytest.TestReport]:
        name = item.kernel
        if name in self.boot_errors:
            raise VMLost(f"kernel {name} did not boot earlier in this run", self.boot_errors[name], None)
        ahead, self.started_ahead = self.started_ahead == item.nodeid, None
        try:
            # a VM that died in a test it ran ahead died in this test: its Run reports that
            vm = self.vm if ahead and self.vm is not None else self.vm_for(name, item.session)
        except VMBootError as exc:
            if not exc.exited:
                self.boot_errors[name] = str(exc)
                raise VMLost("boot failed", str(exc), None) from None
            # a guest that died while booting (seen: udevd crashing under TCG,
            # about 1 boot in 20) gets one more try before its tests are lost
            note(self.config, f"{name} died while booting; trying once more")
            try:
                vm = self.vm_for(name, item.session)
            except VMBootError as again:
                self.boot_errors[name] = f"{exc}\n\n--- second try ---\n{again}"
                raise VMLost("boot failed twice", self.boot_errors[name], None) from None
        case = item.case.nodeid
        ready = vm.ready
        assert ready is not None  # vm_for returns booted VMs only
        if case not in ready.nodeids:
            return synthetic(item, self._not_collected(case, name, ready), time.time())
        # the guest must not run ahead into a test that does not run there
        same_vm = (
            nextitem is not None
            and getattr(nextitem, "kernel", None) == name
            and not self.cannot_run(nextitem)
        )
        done = vm.run(case, nextitem.case.nodeid if same_vm else None)
        if same_vm and vm.cfg.run_ahead:
            self.started_ahead = nextitem.nodeid
        return [self._report(item, data) for data in done.reports]

    def _not_collected(self, case: str, name: str, ready) -> str:
        """Why a case cannot run in the guest: both ids and both rootdirs, then the guest's errors."""
        nearest = ready.nearest.get(case)
        guest = f"the nearest id it collected is {nearest}" if nearest else "it collected no test near it"
        errors = "\n".join(ready.collect_errors) or "(no collection errors)"
        return (
            f"{case} was collected on the host (rootdir {self.config.rootpath}) but not inside the "
            f"{name} guest (rootdir {ready.rootdir or 'unknown'}), so it cannot run there; {guest}. "
            "The guest's pytest runs from the same directory with the same arguments; a conftest or "
            "plugin that collects differently there (another kernel, another environment) gives "
            f"other ids. Collection errors in the guest:\n{errors}"
        )

    def _report(self, item, data: dict) -> pytest.TestReport:
        if protocol.COMPACT in data:  # a phase that passed with nothing to show (protocol.compact_report)
            return pytest.TestReport(
                nodeid=item.nodeid,
                location=item.location,
                keywords={k: 1 for k in item.keywords},
                outcome="passed",
                longrepr=None,
                when=data[protocol.COMPACT],
                duration=data["duration"],
                start=data["start"],
                stop=data["stop"],
                user_properties=[],
            )
        report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
        # JSON has no tuples; pytest (junitxml, skip reporting) insists on them here
        if isinstance(report.longrepr, list):
            report.longrepr = tuple(report.longrepr)
        return report


def synthetic(item, text: str, started: float, *, vm_lost: str | None = None) -> list[pytest.TestReport]:
    """setup/call/teardown reports for a test that could not run to the end."""
    now = time.time()
    common = dict(
        nodeid=item.nodeid, location=item.location, keywords={k: 1 for k in item.keywords}, sections=[]
    )
    reports = [
        pytest.TestReport(
            outcome="passed", longrepr=None, when="setup", duration=0.0, user_properties=[], **common
        ),
        pytest.TestReport(
            outcome="failed", longrepr=text, when="call", duration=now - started, user_properties=[], **common
        ),
        pytest.TestReport(
            outcome="passed", longrepr=None, when="teardown", duration=0.0, user_properties=[], **common
        ),
    ]
    if vm_lost:
        reportattrs.set_vm_lost(reports[1], vm_lost)
    return reports


def refuse(item, text: str) -> None:
    """Log an error for an item that must not run here, without running it."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    common = dict(
        nodeid=item.nodeid,
        location=item.location,
        keywords={k: 1 for k in item.keywords},
        sections=[],
        duration=0.0,
    )
    ihook.pytest_runtest_logreport(
        report=pytest.TestReport(outcome="failed", longrepr=text, when="setup", user_properties=[], **common)
    )
    ihook.pytest_runtest_logreport(
        report=pytest.TestReport(
            outcome="passed", longrepr=None, when="teardown", user_properties=[], **common
        )
    )
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def entry_point_plugins(config) -> list[str] | None:
    """The modules of the plugins pytest loaded from entry points here, for the guest to load
    without autoload: finding them lists every installed distribution and reads its metadata,
    dozens of round trips over 9p. None when one is not a module (the guest then autoloads)."""
    names = []
    for plugin, _dist in config.pluginmanager.list_plugin_distinfo():
        if not isinstance(plugin, types.ModuleType):
            return None
        names.append(plugin.__name__)
    return names


def ahead_plugins(config, plugins: list[str] | None) -> list[str]:
    """The entry-point plugins the guest imports before pytest starts, so unrewritten (protocol.Start.ahead):
    those of the harness's own requirements (parts.dependency_plugins), but not those of a package
    this run also names a module of as a plugin (a conftest's ``pytest_plugins``, ``-p``): pytest
    must rewrite that module, so its package must not be imported before."""
    ours = set(plugins or ()) & parts.dependency_plugins()
    named = {
        plugin.__name__.split(".")[0]
        for plugin in config.pluginmanager.get_plugins()
        if isinstance(plugin, types.ModuleType) and plugin.__name__ not in ours
    }
    return sorted(name for name in ours if name.split(".")[0] not in named)


def vm_cpus(config) -> int:
    """Parallel VMs share the host: under TCG two 2-vCPU guests on 2 cores were no faster
    together than one after the other (bench B3)."""
    if config.option.vm_cpus:
        return config.option.vm_cpus
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    return max(1, min(2, (os.cpu_count() or 1) // workers))
