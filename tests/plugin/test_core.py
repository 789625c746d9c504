"""The plugin's core in-process, without root or a boot: routing, dispatch, items, roles, rundir, context.

Each test runs a real pytest session in this process (pytester's in-process
runs) with the harness plugin loaded as installed. Only what lies beyond the
core is stood in for: resolving a kernel (a ``Kernel`` record of a file that
is never booted), the host preflight, and the VM (``FakeVM``: answers as a
guest agent does, from the case's name). The VM itself, the guest agent and
the protocol are tested against real boots and the fake vng elsewhere
(tests/vm/).
"""

from __future__ import annotations

import itertools
import signal
import types
from pathlib import Path

import pytest
from _pytest.reports import pytest_report_to_serializable  # as the guest serialises

import harness.kernels
from harness import protocol
from harness.bpf import context
from harness.plugin import dispatch, roles, rundir
from harness.plugin.items import KernelItem
from harness.vm import preflight
from harness.vm.seam import BootRecord, VMLost

KERNELS = ("6.1.192", "6.12.117")

TESTS = """
import pytest

def test_a():
    pass

@pytest.mark.parametrize("x", ["HASH", "ARRAY"])
def test_p(x):
    pass

class TestC:
    def test_m(self):
        pass

@pytest.mark.host
def test_on_host():
    pass
"""


class FakeVM:
    """Stands in for ``harness.vm.launcher.VM``: collects every case but those named
    ``*not_in_guest*``, fails ``*fails*``, dies in ``*lost*`` (a kernel panic)."""

    booted: list[tuple[str, list[str]]] = []  # (kernel, cases), one per boot
    ahead: list[str] = []  # the last Start's plugins to import before pytest (protocol.Start.ahead)
    cfg_append: list[str] = []  # the last boot's kernel arguments

    def __init__(self, kernel, cfg, cwd: Path):
        self.kernel, self.cfg, self.cwd = kernel, cfg, cwd
        self.ready: protocol.Ready | None = None
        self.alive = True
        self.boot_seconds = 0.5
        self.log_path = cwd / f"{kernel.name}.console.log"

    def start(self, args, cases, plugins, *, initial, files, ahead=()) -> protocol.Ready:
        assert args[args.index("--harness-guest-kernel") + 1] == self.kernel.name
        FakeVM.booted.append((self.kernel.name, list(cases)))
        FakeVM.ahead = list(ahead)
        FakeVM.cfg_append = list(self.cfg.append)
        collected = [case for case in cases if "not_in_guest" not in case]
        self.ready = protocol.Ready(
            release=f"{self.kernel.name}-fake", version="#1", uptime=1.0, nodeids=collected, rootdir="/guest"
        )
        return self.ready

    def boot_record(self) -> BootRecord:
        return BootRecord(self.kernel.name, f"{self.kernel.name}-fake", "#1", "tcg", 0.5, str(self.log_path))

    def run(self, case: str, next_case: str | None) -> protocol.Done:
        if "lost" in case:
            self.alive = False
            raise VMLost("kernel panic", "Kernel panic - not syncing: fake", None)
        guest_id = f"{case}[{self.kernel.name}]"  # as the guest names it (harness.ids)
        failed = "fails" in case
        reports = [
            pytest.TestReport(guest_id, ("t.py", 1, "guest"), {}, "passed", None, "setup"),
            pytest.TestReport(
                guest_id,
                ("t.py", 1, "guest"),
                {},
                "failed" if failed else "passed",
                f"assert 1 == 2 (in the guest of {self.kernel.name})" if failed else None,
                "call",
            ),
            pytest.TestReport(guest_id, ("t.py", 1, "guest"), {}, "passed", None, "teardown"),
        ]
        # as the guest sends them (harness.guest.agent): compact when a phase passed with nothing to show
        serialised = [protocol.compact_report(r) or pytest_report_to_serializable(r) for r in reports]
        return protocol.Done(nodeid=guest_id, reports=serialised)

    def close(self) -> None:
        self.alive = False

    def kill(self) -> None:
        self.alive = False


def fake_resolve(spec: str, **kw) -> harness.kernels.Kernel:
    return harness.kernels.Kernel(
        spec, f"{spec}-fake", Path("/nonexistent/vmlinuz"), "local", "0" * 64, None, spec
    )


@pytest.fixture
def harness_run(pytester, monkeypatch):
    """pytester with --kernel working in-process: kernels resolve to records, VMs are FakeVMs."""
    monkeypatch.setattr(harness.kernels, "resolve", fake_resolve)
    monkeypatch.setattr(preflight, "missing", lambda: [])
    monkeypatch.setattr(dispatch, "VM", FakeVM)
    monkeypatch.setattr(dispatch.Runner, "_with_pyzip", lambda self, vmcfg: vmcfg)
    monkeypatch.setattr(FakeVM, "booted", [])
    sigterm = signal.getsignal(signal.SIGTERM)  # routing makes SIGTERM unwind like Ctrl-C
    yield pytester
    signal.signal(signal.SIGTERM, sigterm)


RUNS = itertools.count()


def kernel_args(*kernels: str, results_dir: bool = True) -> list[str]:
    """--kernel for each kernel (both by default); each run its own --results-dir, as two runs
    of one process within a second would share the default one's name (time and pid)."""
    args = [arg for name in kernels or KERNELS for arg in ("--kernel", name)]
    if results_dir:
        args.append(f"--results-dir=run-{next(RUNS)}")
    return [*args, "--accel=tcg", "-p", "no:cacheprovider"]


def collected(pytester, *args: str) -> list[str]:
    result = pytester.runpytest_inprocess(*kernel_args(), "--collect-only", "-q", *args)
    return [line for line in result.outlines if "::" in line]


# -- routing ------------------------------------------------------------------


def test_each_collected_test_becomes_one_item_per_kernel_kernel_by_kernel(harness_run):
    harness_run.makepyfile(test_t=TESTS)
    expected = ["test_t.py::test_on_host"]  # stays as it is, first
    for k in KERNELS:
        expected += [
            f"test_t.py::test_a[{k}]",
            f"test_t.py::test_p[HASH-{k}]",
            f"test_t.py::test_p[ARRAY-{k}]",
            f"test_t.py::TestC::test_m[{k}]",
        ]
    assert collected(harness_run) == expected


def test_minus_k_and_deselect_see_the_kernel_in_ids(harness_run):
    harness_run.makepyfile(test_t=TESTS)
    assert collected(harness_run, "-k", "test_a and 6.12.117") == ["test_t.py::test_a[6.12.117]"]
    kept = collected(harness_run, "-k", "test_p", "--deselect", "test_t.py::test_p[HASH-6.1.192]")
    assert kept == [
        "test_t.py::test_p[ARRAY-6.1.192]",
        "test_t.py::test_p[HASH-6.12.117]",
        "test_t.py::test_p[ARRAY-6.12.117]",
    ]


def test_minus_k_matches_a_tests_own_names_as_on_the_host_and_kernels_only_by_name(harness_run):
    """A digit of the kernel's name selects nothing: -k 2 picks what it picks on the host."""
    harness_run.makepyfile(test_t=TESTS.replace('"ARRAY"', '"ARRAY2"'))
    assert collected(harness_run, "-k", "2") == [f"test_t.py::test_p[ARRAY2-{k}]" for k in KERNELS]
    assert collected(harness_run, "-k", "not 2 and not test_p") == ["test_t.py::test_on_host"] + [
        f"test_t.py::{case}[{k}]" for k in KERNELS for case in ("test_a", "TestC::test_m")
    ]
    assert collected(harness_run, "-k", "6.1 and test_m") == ["test_t.py::TestC::test_m[6.1.192]"]
    assert collected(harness_run, "-k", "not 6.12.117 and test_a") == ["test_t.py::test_a[6.1.192]"]
    out = harness_run.runpytest(*kernel_args(*KERNELS), "--collect-only", "-q", "-k", "2")
    out.stdout.fnmatch_lines(["*2/9 tests collected (7 deselected)*"])


def test_an_id_given_with_a_kernel_runs_on_that_kernel_only(harness_run):
    harness_run.makepyfile(test_t=TESTS)
    assert collected(harness_run, "test_t.py::test_a[6.12.117]") == ["test_t.py::test_a[6.12.117]"]


def test_without_kernel_nothing_is_routed(harness_run):
    harness_run.makepyfile(test_t=TESTS)
    result = harness_run.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line][:2] == [
        "test_t.py::test_a",
        "test_t.py::test_p[HASH]",
    ]


def test_kernel_items_keep_the_tests_markers_and_location(harness_run):
    harness_run.makepyfile(
        test_t='import pytest\n\n@pytest.mark.filterwarnings("error")\ndef test_a():\n    pass\n'
    )
    spy = _Spy()
    harness_run.inline_run(*kernel_args("6.1.192"), "--collect-only", "-m", "filterwarnings", plugins=[spy])
    (item,) = spy.items
    assert isinstance(item, KernelItem) and item.kernel == "6.1.192"
    assert item.case.nodeid == "test_t.py::test_a"
    assert item.get_closest_marker("filterwarnings") is not None  # -m selects by the test's markers
    assert item.location == ("test_t.py", 2, "test_a[6.1.192]")  # the test's own, 0-based


# -- dispatch -----------------------------------------------------------------


def reports_of(reprec, when: str = "call") -> dict[str, pytest.TestReport]:
    return {r.nodeid: r for r in reprec.getreports("pytest_runtest_logreport") if r.when == when}


def test_the_guests_reports_are_replayed_under_the_host_id_with_the_kernel(harness_run):
    harness_run.makepyfile(test_t="def test_a():\n    pass\n\ndef test_fails():\n    pass\n")
    reprec = harness_run.inline_run(*kernel_args())
    calls = reports_of(reprec)
    assert sorted(calls) == sorted(f"test_t.py::{t}[{k}]" for t in ("test_a", "test_fails") for k in KERNELS)
    failed = calls["test_t.py::test_fails[6.12.117]"]
    assert failed.failed and "in the guest of 6.12.117" in str(failed.longrepr)
    assert failed.location == ("test_t.py", 3, "test_fails[6.12.117]")  # the host item's, not the guest's
    assert failed.kernel == "6.12.117" and ("kernel", "6.12.117") in failed.user_properties
    assert calls["test_t.py::test_a[6.1.192]"].passed
    # each kernel boots once, with the cases of that kernel
    assert FakeVM.booted == [(k, ["test_t.py::test_a", "test_t.py::test_fails"]) for k in KERNELS]


def test_a_lost_vm_is_vm_lost_and_the_next_test_boots_a_fresh_one(harness_run):
    harness_run.makepyfile(test_t="def test_lost():\n    pass\n\ndef test_after():\n    pass\n")
    reprec = harness_run.inline_run(*kernel_args("6.1.192"))
    calls = reports_of(reprec)
    lost = calls["test_t.py::test_lost[6.1.192]"]
    assert lost.failed and lost.vm_lost == "kernel panic" and "Kernel panic" in str(lost.longrepr)
    assert calls["test_t.py::test_after[6.1.192]"].passed
    assert len(FakeVM.booted) == 2
    result = harness_run.runpytest_inprocess(*kernel_args("6.1.192"))
    result.stdout.fnmatch_lines(["test_t.py::test_lost * L *", "*= 1 passed, 1 vm lost in *"])


def test_a_case_the_guest_did_not_collect_fails_naming_both_sides(harness_run):
    harness_run.makepyfile(test_t="def test_not_in_guest():\n    pass\n")
    reprec = harness_run.inline_run(*kernel_args("6.1.192"))
    (report,) = reports_of(reprec).values()
    assert report.failed
    assert "collected on the host" in str(report.longrepr) and "rootdir /guest" in str(report.longrepr)


def test_an_item_without_kernel_is_refused_not_run(harness_run):
    harness_run.makeconftest(
        """
import pytest

ran = []

def pytest_collection_modifyitems(items):
    # after the harness's routing (tryfirst): an item added behind its back
    items.append(pytest.Function.from_parent(items[0].parent, name="test_late", callobj=lambda: ran.append(1)))
"""
    )
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    reprec = harness_run.inline_run(*kernel_args("6.1.192"))
    setups = reports_of(reprec, "setup")
    refused = setups["test_t.py::test_late"]
    assert refused.failed and "has no kernel" in str(refused.longrepr)
    assert "test_t.py::test_late" not in reports_of(reprec)  # never called
    assert reports_of(reprec)["test_t.py::test_a[6.1.192]"].passed


def test_a_host_marked_test_runs_on_the_host(harness_run):
    harness_run.makepyfile(test_t=TESTS)
    reprec = harness_run.inline_run(*kernel_args("6.1.192"), "-k", "on_host")
    (report,) = reports_of(reprec).values()
    assert report.nodeid == "test_t.py::test_on_host" and report.passed
    assert FakeVM.booted == []


# -- roles, rundir, the toolkit's context -------------------------------------


def fake_config(**options) -> types.SimpleNamespace:
    values = {"harness_guest_kernel": None, "dist": "no", "bpf_kernels": [], "collectonly": False, **options}
    return types.SimpleNamespace(
        getoption=lambda name, default=None: values.get(name, default),
        option=types.SimpleNamespace(**values),
    )


@pytest.mark.parametrize(
    ("options", "extra", "expected"),
    [
        ({}, {}, roles.Role.HOST),
        ({"harness_guest_kernel": "6.1.192"}, {}, roles.Role.GUEST),
        ({"dist": "load"}, {}, roles.Role.CONTROLLER),
        ({"dist": "load", "collectonly": True}, {}, roles.Role.HOST),
        ({}, {"workerinput": {}}, roles.Role.WORKER),
    ],
)
def test_the_role_of_a_process(options, extra, expected):
    config = fake_config(**options)
    for name, value in extra.items():
        setattr(config, name, value)
    assert roles.role(config) is expected


def test_vm_mode_is_the_host_side_of_kernel_runs_only():
    assert roles.vm_mode(fake_config(bpf_kernels=["6.1"]))
    assert not roles.vm_mode(fake_config())
    assert not roles.vm_mode(fake_config(bpf_kernels=["6.1"], harness_guest_kernel="6.1.192"))
    assert roles.records_results(fake_config(dist="load"))
    assert not roles.records_results(fake_config(harness_guest_kernel="6.1.192"))


def test_a_kernel_run_gets_its_own_directory_and_latest_points_at_it(harness_run):
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    harness_run.inline_run(*kernel_args("6.1.192", results_dir=False))
    (run,) = (p for p in (harness_run.path / "results").iterdir() if p.name != rundir.LATEST)
    assert (run / "results.json").is_file()
    assert (harness_run.path / "results" / rundir.LATEST).resolve() == run


def test_results_dir_names_the_directory_itself(harness_run):
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    harness_run.inline_run(*kernel_args("6.1.192"), "--results-dir=out")
    assert (harness_run.path / "out" / "results.json").is_file()
    assert not (harness_run.path / "results").exists()


def test_the_toolkit_is_told_its_run_by_the_plugin(harness_run):
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    seen = {}
    for args in ([], kernel_args("6.1.192")):
        spy = _Spy()
        harness_run.inline_run("--collect-only", *args, plugins=[spy])
        seen[bool(args)] = spy.run
    local, under_kernel = seen[False], seen[True]
    assert not local.guest and not local.precompile and local.newest_kernel is not None
    assert under_kernel.precompile and not under_kernel.guest


class _Spy:
    """A plugin that notes what the session collected and what the toolkit was told."""

    run: context.Run | None = None
    items: list = []

    def pytest_collection_finish(self, session):
        self.run = context.of(session.config)
        self.items = list(session.items)


def test_the_toolkit_alone_runs_as_a_plain_local_run():
    assert context.of(types.SimpleNamespace(stash=pytest.Stash())) == context.Run()


def test_the_harness_dependencies_plugins_go_ahead_unless_the_run_names_a_module_of_theirs(harness_run):
    """pytest-xdist's plugins are imported before the guest's pytest, unrewritten (seconds under TCG),
    except in a run whose conftest names an xdist module as a plugin: pytest rewrites that one."""
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    harness_run.runpytest_inprocess(*kernel_args("6.1.192")).assert_outcomes(passed=1)
    first = FakeVM.ahead
    assert {"xdist.plugin", "xdist.looponfail"} <= set(first)
    harness_run.makeconftest('pytest_plugins = ["xdist._version"]\n')
    harness_run.runpytest_inprocess(*kernel_args("6.1.192")).assert_outcomes(passed=1)
    assert FakeVM.ahead == [name for name in first if not name.startswith("xdist.")]


def test_vm_append_adds_kernel_arguments_one_at_a_time(harness_run):
    harness_run.makepyfile(test_t="def test_a():\n    pass\n")
    result = harness_run.runpytest_inprocess(*kernel_args("6.1.192"), "--vm-append=nokaslr")
    result.assert_outcomes(passed=1)
    assert FakeVM.cfg_append[-1] == "nokaslr" and "tsc=reliable" in FakeVM.cfg_append
    bad = harness_run.runpytest_inprocess(*kernel_args("6.1.192"), "--vm-append=a b")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--vm-append 'a b': give one kernel argument per --vm-append*"])
