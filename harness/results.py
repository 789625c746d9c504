"""Record a pytest run into a results file (harness.records schema) and end the terminal summary with a cases x kernels matrix.

Active on the controller (or the only pytest process); it does nothing inside a
guest or in an xdist worker, whose reports reach the controller anyway.

    pytest --kernel 6.1 --kernel 6.12 cases/                 # -> results/results.json
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
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from harness import records
from harness.records import CaseRecord, KernelRecord, RunMeta, RunRecord

# exit codes after which the session saw every selected test
_FINISHED = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
_MESSAGE_CHARS = 600
_LOG_CHARS = 2000


def pytest_addoption(parser):
    group = parser.getgroup("bpf-harness")
    group.addoption("--results-json", type=Path, default=None, metavar="PATH",
                    help="write the run's results here (default: <--results-dir>/results.json)")
    group.addoption("--results-label", default=None, metavar="TEXT",
                    help="a label stored in the results file, e.g. the CI job name")


def pytest_configure(config):
    if getattr(config.option, "harness_guest_kernel", None) or hasattr(config, "workerinput"):
        return
    if config.option.collectonly:
        return  # nothing runs: a file would only hide the last real run's
    if not config.pluginmanager.has_plugin("bpf-harness-recorder"):
        config.pluginmanager.register(Recorder(config), "bpf-harness-recorder")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _git_commit(root: Path) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                           text=True, timeout=10)
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

    def __init__(self, config):
        self.config = config
        option = config.option
        results_dir = getattr(option, "results_dir", None) or Path("results")
        # resolved now: a test may chdir before the session ends
        self.path = Path(option.results_json or Path(results_dir) / "results.json").resolve()
        self.explicit = bool(option.results_json) or Path(results_dir) != Path("results")
        self.writable = True
        self.cases: dict[str, CaseRecord] = {}
        self.meta = RunMeta(
            started=_now(), finished=None, host=socket.gethostname(),
            host_kernel=os.uname().release, harness_version=_harness_version(),
            git_commit=_git_commit(config.rootpath), args=list(config.invocation_params.args),
            mode="vm" if self._vm_kernels() else "host", label=option.results_label,
        )
        self.final: RunRecord | None = None

    # -- what the run is about ---------------------------------------------

    def _vm_kernels(self) -> dict:
        from harness import plugin  # noqa: PLC0415 - plugin imports this module

        return self.config.stash.get(plugin.KERNELS, {}) if self.config.option.bpf_kernels else {}

    def _booted(self) -> list[dict]:
        from harness import plugin  # noqa: PLC0415

        runner = self.config.stash.get(plugin.RUNNER, None)
        return list(runner.booted) if runner is not None else []

    def _host_kernel(self) -> KernelRecord:
        u = os.uname()
        return KernelRecord(name=u.release, spec="", release=u.release, version=u.version,
                            source="host", origin="the kernel pytest ran on")

    def kernels(self) -> list[KernelRecord]:
        out = []
        booted = self._booted()
        for name, k in self._vm_kernels().items():
            boots = [b for b in booted if b["kernel"] == name]
            first = boots[0] if boots else {}
            # a local kernel is named by its release; --kernel needs the path again
            spec = k.origin if k.source in ("local", "build") else name
            out.append(KernelRecord(
                name=name, spec=spec, release=first.get("release", k.release),
                version=first.get("version"), source=k.source, sha256=k.sha256,
                package=k.package, origin=k.origin, accel=first.get("accel"),
                boot_seconds=first.get("boot_seconds"), boots=len(boots),
                console_log=first.get("console_log"),
            ))
        host = self._host_kernel()
        if not out or any(c.kernel == host.name for c in self.cases.values()):
            out.append(host)  # host mode, or tests marked to run on the host
        return out

    def run_record(self, complete: bool) -> RunRecord:
        return RunRecord(schema=records.SCHEMA, complete=complete, meta=self.meta,
                         kernels=self.kernels(), cases=list(self.cases.values()))

    # -- hooks --------------------------------------------------------------

    def pytest_sessionstart(self, session):
        try:
            records.dump(self.run_record(complete=False), self.path)
        except OSError as e:
            message = (f"cannot write the results file {self.path}: {e.strerror}; "
                       "pass a writable --results-json or --results-dir")
            if self.explicit:
                raise pytest.UsageError(message) from None
            # the default place (a read-only checkout, say) must not stop a plain run
            self.writable = False
            session.config.issue_config_time_warning(pytest.PytestConfigWarning(message), stacklevel=2)

    def pytest_runtest_logreport(self, report):
        kernel = self._kernel_of(report)
        rec = self.cases.get(report.nodeid)
        if rec is None:
            rec = self.cases[report.nodeid] = CaseRecord(
                case=records.case_id(report.nodeid, kernel if self.meta.mode == "vm" else None),
                kernel=kernel, nodeid=report.nodeid, outcome="passed", duration=0.0)
        rec.duration = round(rec.duration + (report.duration or 0.0), 3)
        _apply(rec, report)
        if rec.outcome in records.BAD and rec.reproduce is None:
            spec = next((k.spec for k in self.kernels() if k.name == rec.kernel), None)
            rec.reproduce = records.reproduce_line(rec.nodeid, spec or None)

    def _kernel_of(self, report) -> str:
        for key, value in getattr(report, "user_properties", ()) or ():
            if key == "kernel":
                return value
        for name in self._vm_kernels():
            if report.nodeid.endswith((f"[{name}]", f"-{name}]")):
                return name
        return os.uname().release

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        complete = (exitstatus in _FINISHED and not session.shouldstop and not session.shouldfail)
        self.meta.finished = _now()
        self.meta.exit_status = int(exitstatus)
        self.final = self.run_record(complete)
        if self.writable:
            records.dump(self.final, self.path)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        run = self.final
        if run is None:
            return
        from harness import matrix  # noqa: PLC0415 - only needed at the end

        m = matrix.merge([run])
        if run.meta.mode == "vm" or len(m.kernels) > 1:
            terminalreporter.section("cases x kernels")
            for line in matrix.render_text(m).splitlines():
                terminalreporter.write_line(line)
        if not self.writable:
            return
        state = "" if run.complete else " (INCOMPLETE: the run did not finish)"
        terminalreporter.write_line(f"results: {self.path}{state}")


def _apply(rec: CaseRecord, report) -> None:
    """Fold one phase's report into the case's record, as pytest's own summary counts it."""
    xfail = hasattr(report, "wasxfail")
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
            lost = getattr(report, "vm_lost", None)
            rec.outcome = "vm-lost" if lost else "failed"
            rec.vm_lost = lost or None
            rec.message = _short(report)
            rec.errno, rec.verifier_log = _bpf_details(report)
    elif report.failed:  # teardown
        if rec.outcome not in ("failed", "vm-lost", "error"):
            rec.outcome = "error"
            rec.message = _short(report)
    splat = getattr(report, "kernel_splat", None)
    if splat:
        rec.kernel_splat = str(splat)[:_LOG_CHARS]


def _short(report) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    short = "\n".join(lines[:6])
    return short[:_MESSAGE_CHARS] + ("..." if len(short) > _MESSAGE_CHARS else "")


def _skip_reason(report) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = report.longreprtext or ""
    return reason.removeprefix("Skipped: ").strip() or None


_ERRNO = re.compile(r"BPFError: [\w.]+: (E[A-Z0-9]+) \(")
_LOG_HEAD = "verifier log (last lines):"


def _bpf_details(report) -> tuple[str | None, str | None]:
    """errno name and verifier-log excerpt: the report's own attributes if the
    runner set them, else what the BPFError message shows in the traceback."""
    errno = getattr(report, "bpf_errno", None)
    log = getattr(report, "verifier_log", None)
    text = report.longreprtext or ""
    if errno is None and (m := _ERRNO.search(text)):
        errno = m.group(1)
    if log is None and _LOG_HEAD in text:
        tail = text.split(_LOG_HEAD, 1)[1].splitlines()[1:]
        kept = []
        for line in tail:
            body = line[1:] if line.startswith("E") else line  # pytest's "E   " prefix
            if not body.startswith("  ") or not body.strip():
                break
            kept.append(body.strip())
        log = "\n".join(kept) or None
    return (str(errno) if errno else None), (str(log)[:_LOG_CHARS] if log else None)
