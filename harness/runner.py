"""Host side of a test that runs in a VM: pick the VM, run it there, replay its reports.

One host process keeps at most one VM: tests are ordered by kernel (the kernel
parameter is session-scoped), so each kernel is booted once per process and
shut down when the next kernel's tests begin. With pytest-xdist, every worker
is such a process; the plugin groups tests by kernel so that two workers run
two kernels side by side.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from _pytest.reports import TestReport

from harness import pyzip
from harness.vm import VM, VMBootError, VMConfig, VMLost

KERNEL_PARAM = "bpf_kernel"


def kernel_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(KERNEL_PARAM) if callspec else None


def note(config, text: str) -> None:
    """Progress on long waits, on the terminal when there is one."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not hasattr(config, "workerinput"):
        reporter.write_line(f"bpf-harness: {text}")
    else:
        print(f"bpf-harness: {text}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, config, kernels: dict, vmcfg: VMConfig):
        self.config = config
        self.kernels = kernels  # name -> harness.kernels.Kernel
        self.vmcfg = vmcfg
        self.vm: VM | None = None
        self.boot_errors: dict[str, str] = {}
        self.booted: list[dict] = []  # one record per VM, for the summary

    # -- VMs ----------------------------------------------------------------

    def _guest_args(self, name: str, session) -> list[str]:
        config = self.config
        paths = sorted({str(item.path) for item in session.items if kernel_of(item) == name})
        args = ["--rootdir", str(config.rootpath), "-q"]
        if config.inipath:
            args += ["-c", str(config.inipath)]
        for plugin in config.option.plugins or []:
            args += ["-p", plugin]
        for override in config.option.override_ini or []:
            args += ["-o", override]
        return args + paths

    def vm_for(self, name: str, session) -> VM:
        if self.vm is not None and self.vm.kernel.name == name and self.vm.alive:
            return self.vm
        self.close()
        kernel = self.kernels[name]
        if self.vmcfg.pyzip is None:
            self.vmcfg = self._with_pyzip(self.vmcfg)
        note(self.config, f"booting {name} ({self.vmcfg.accel.upper()}, "
                          f"{self.vmcfg.cpus} vCPU, {self.vmcfg.memory}) ...")
        vm = VM(kernel, self.vmcfg, Path.cwd())
        ready = vm.start(self._guest_args(name, session))
        self.vm = vm
        note(self.config, f"{name} up in {vm.boot_seconds:.1f} s: {ready.release} "
                          f"(guest uptime {ready.uptime:.1f} s), console log {vm.log_path}")
        self.booted.append({
            "kernel": name, "release": ready.release, "version": ready.version,
            "accel": self.vmcfg.accel, "boot_seconds": round(vm.boot_seconds, 2),
            "guest_uptime": ready.uptime, "console_log": str(vm.log_path),
        })
        return vm

    def _with_pyzip(self, vmcfg: VMConfig) -> VMConfig:
        try:
            return dataclasses.replace(vmcfg, pyzip=pyzip.ensure())
        except OSError as exc:  # an unwritable cache costs speed, not correctness
            note(self.config, f"guest imports go over 9p (slower): cannot build the module zip: {exc}")
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

    def run(self, item, nextitem) -> None:
        name = kernel_of(item)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        started = time.time()
        try:
            reports = self._run(item, nextitem, name)
        except VMLost as lost:
            self.vm = None  # killed by VM.run; the next test boots a fresh one
            reports = _synthetic(item, str(lost), started, vm_lost=lost.reason)
        for report in reports:
            report.user_properties.append(("kernel", name))
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def _run(self, item, nextitem, name: str) -> list[TestReport]:
        if name in self.boot_errors:
            raise VMLost(f"kernel {name} did not boot earlier in this run", self.boot_errors[name], None)
        try:
            vm = self.vm_for(name, item.session)
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
        if item.nodeid not in vm.ready.nodeids:
            errors = "\n".join(vm.ready.collect_errors) or "(no collection errors)"
            return _synthetic(item, f"{item.nodeid} was not collected inside the {name} "
                                    f"guest:\n{errors}", time.time())
        next_id = nextitem.nodeid if nextitem is not None and kernel_of(nextitem) == name else None
        done = vm.run(item.nodeid, next_id)
        return [self._report(data) for data in done.reports]

    def _report(self, data: dict) -> TestReport:
        report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
        # JSON has no tuples; pytest (junitxml, skip reporting) insists on them here
        report.location = tuple(report.location)
        if isinstance(report.longrepr, list):
            report.longrepr = tuple(report.longrepr)
        return report


def _synthetic(item, text: str, started: float, **extra) -> list[TestReport]:
    """setup/call/teardown reports for a test that could not run to the end."""
    now = time.time()
    common = dict(nodeid=item.nodeid, location=item.location,
                  keywords={k: 1 for k in item.keywords}, sections=[], user_properties=[])
    return [
        TestReport(outcome="passed", longrepr=None, when="setup", duration=0.0, **common),
        TestReport(outcome="failed", longrepr=text, when="call", duration=now - started,
                   **common, **extra),
        TestReport(outcome="passed", longrepr=None, when="teardown", duration=0.0,
                   **{**common, "user_properties": []}),
    ]
