"""Record a pytest run into a results file (harness.report.records schema) and end the terminal summary with a cases x kernels matrix.

Active on the controller (or the only pytest process) of a run that records
(``--kernel``, a results option or the ``bpf_results_dir`` ini option: see
``harness.plugin.rundir``); it does nothing inside a guest or in an xdist
worker, whose reports reach the controller anyway.

    pytest --kernel 6.1 --kernel 6.12 cases/        # -> results/<time>-<pid>/results.json
    pytest --results-json out/run.json --results-label ci-6.1 ...

The file is written atomically at session start as a placeholder with
"complete": false, and again at the end; "complete" is true only when the
session ran to its end (not interrupted, not stopped by -x or --maxfail, no
collection error). A run killed outright therefore leaves an incomplete file,
never the previous run's file looking like this run's.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from harness import ids, reportattrs
from harness.plugin import rundir
from harness.plugin.roles import vm_mode
from harness.report import records
from harness.report.records import CaseRecord, KernelRecord, RunMeta, RunRecord

# exit codes after which the session saw every selected test
_FINISHED = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
_MESSAGE_CHARS = 600
_LOG_CHARS = 2000


def register(config) -> None:
    """Record this run (the plugin calls it on the host or xdist controller of a run that records)."""
    if config.option.collectonly:
        return  # collect-only runs nothing: a file would only hide the last real run's
    config.pluginmanager.register(Recorder(config), "bpf-harness-recorder")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _git_commit(root: Path) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _harness_version() -> str:
    try:
        return metadata.version("bpf-vm-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


class Recorder:
    """Collects one CaseRecord per test id from the reports pytest logs."""

    def __init__(self, config) -> None:
        self.config = config
        option = config.option
        path = option.results_json
        if path is None:
            run_dir = rundir.run_dir(config)
            assert run_dir is not None  # this run records: it has a directory
            path = run_dir / "results.json"
        self.path = path.resolve()  # now: a test may chdir before the session ends
        self.vm_kernels: dict = {}  # name -> harness.kernels.Kernel
        self.boots: list = []  # harness.vm.seam.BootRecord
        self.cases: dict[str, CaseRecord] = {}
        self.meta = RunMeta(
            started=_now(),
            finished=None,
            host=socket.gethostname(),
            host_kernel=os.uname().release,
            harness_version=_harness_version(),
            git_commit=_git_commit(config.rootpath),
            args=list(config.invocation_params.args),
            mode="vm" if vm_mode(config) else "host",
            label=option.results_label,
        )
        self.final: RunRecord | None = None

    # -- what the run is about ---------------------------------------------

    def pytest_bpf_kernels_resolved(self, kernels):
        self.vm_kernels = kernels

    def pytest_bpf_vm_booted(self, boot):
        self.boots.append(boot)

    def _host_kernel(self) -> KernelRecord:
        u = os.uname()
        return KernelRecord(
            name=u.release,
            spec="",
            release=u.release,
            version=u.version,
            source="host",
            origin="the kernel pytest ran on",
        )

    def kernels(self) -> list[KernelRecord]:
        out = []
        for name, k in self.vm_kernels.items():
            boots = [b for b in self.boots if b.kernel == name]
            first = boots[0] if boots else None
            # a local kernel is named by its release; --kernel needs the path again
            spec = k.origin if k.source in ("local", "build") else name
            out.append(
                KernelRecord(
                    name=name,
                    spec=spec,
                    release=first.release if first else k.release,
                    version=first and first.version,
                    source=k.source,
                    sha256=k.sha256,
                    package=k.package,
                    origin=k.origin,
                    accel=first and first.accel,
                    boot_seconds=first and first.boot_seconds,
                    boots=len(boots),
                    console_log=first and first.console_log,
                )
            )
        host = self._host_kernel()
        if not out or any(c.kernel == host.name for c in self.cases.values()):
            out.append(host)  # host mode, or tests marked to run on the host
        return out

    def run_record(self, complete: bool) -> RunRecord:
        return RunRecord(
            schema=records.SCHEMA,
            complete=complete,
            meta=self.meta,
            kernels=self.kernels(),
            cases=list(self.cases.values()),
        )

    # -- hooks --------------------------------------------------------------

    def pytest_sessionstart(self, session):
        try:
            records.dump(self.run_record(complete=False), self.path)
        except OSError as e:
            raise pytest.UsageError(
                f"cannot write the results file {self.path}: {e.strerror}; "
                "pass a writable --results-json or --results-dir"
            ) from None

    def pytest_runtest_logreport(self, report):
        kernel = self._kernel_of(report)
        rec = self.cases.get(report.nodeid)
        if rec is None:
            rec = self.cases[report.nodeid] = CaseRecord(
                case=ids.case_of(report.nodeid, kernel if self.meta.mode == "vm" else None),
                kernel=kernel,
                nodeid=report.nodeid,
                outcome="passed",
                duration=0.0,
            )
        rec.duration = round(rec.duration + (report.duration or 0.0), 3)
        _apply(rec, report)
        if rec.outcome in records.BAD and rec.reproduce is None:
            spec = next((k.spec for k in self.kernels() if k.name == rec.kernel), None)
            rec.reproduce = records.reproduce_line(rec.nodeid, spec or None)

    def _kernel_of(self, report) -> str:
        return (
            reportattrs.read(report).kernel
            or ids.split(report.nodeid, self.vm_kernels)[1]
            or os.uname().release
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        complete = exitstatus in _FINISHED and not session.shouldstop and not session.shouldfail
        self.meta.finished = _now()
        self.meta.exit_status = int(exitstatus)
        self.final = self.run_record(complete)
        records.dump(self.final, self.path)
        rundir.mark_latest(self.config)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        run = self.final
        if run is None:
            return
        from harness.report import matrix  # noqa: PLC0415 - only needed at the end

        m = matrix.merge([run])
        if run.meta.mode == "vm" or len(m.kernels) > 1:
            terminalreporter.section("cases x kernels")
            for line in matrix.render_text(m).splitlines():
                terminalreporter.write_line(line)
        state = "" if run.complete else " (INCOMPLETE: the run did not finish)"
        terminalreporter.write_line(f"results: {self.path}{state}")


def _apply(rec: CaseRecord, report) -> None:
    """Fold one phase's report into the case's record, as pytest's own summary counts it."""
    xfail = hasattr(report, "wasxfail")
    extras = reportattrs.read(report)
    if report.when == "setup":
        if report.failed:
            rec.outcome = "error"
            rec.message = _short(report)
        elif report.skipped:
            rec.outcome = "xfailed" if xfail else "skipped"
            rec.skip_reason = rec.message = _skip_reason(report)
    elif report.when == "call":
        if report.passed:
            rec.outcome = "xpassed" if xfail else "passed"
            if xfail:
                rec.message = report.wasxfail or None
        elif report.skipped:
            rec.outcome = "xfailed" if xfail else "skipped"
            rec.skip_reason = rec.message = (report.wasxfail or None) if xfail else _skip_reason(report)
        else:
            rec.outcome = "vm-lost" if extras.vm_lost else "failed"
            rec.vm_lost = extras.vm_lost
            rec.message = _short(report)
            rec.errno = extras.bpf_errno
            rec.verifier_log = extras.verifier_log and extras.verifier_log[:_LOG_CHARS]
    elif report.failed:  # teardown
        if rec.outcome not in ("failed", "vm-lost", "error"):
            rec.outcome = "error"
            rec.message = _short(report)
    if extras.kernel_splat:
        rec.kernel_splat = extras.kernel_splat[:_LOG_CHARS]


def _short(report) -> str:
    """The failure's message: pytest's crash line, else the first lines of the report's text, or
    the last when that text is a Python traceback (the exception comes last)."""
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    traceback = crash is None and any(line.startswith("Traceback (most recent call last)") for line in lines)
    short = "\n".join(lines[-6:] if traceback else lines[:6])
    return short[:_MESSAGE_CHARS] + ("..." if len(short) > _MESSAGE_CHARS else "")


def _skip_reason(report) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = report.longreprtext or ""
    return reason.removeprefix("Skipped: ").strip() or None
