"""Run the BPF cases on the host kernel and check they pass and leave no program, map or link behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness import libbpf as L

pytestmark = pytest.mark.slow  # the real cases in pytest subprocesses, as root and as CAP_BPF only

REPO = Path(__file__).resolve().parent.parent


def _ids() -> dict[str, set[int]]:
    return {"prog": L.prog_ids(), "map": L.map_ids(), "link": L.link_ids()}


def _run_cases(*args: str, prefix: Sequence[str] = ()) -> str:
    """``pytest cases/`` of this checkout in a subprocess (started through prefix), which must exit 0;
    its output. Fixtures and gates come from the harness plugin (entry point), as in any run."""
    pytest_cases = [sys.executable, "-B", "-m", "pytest", "cases/", "-p", "no:cacheprovider", "-q", *args]
    done = subprocess.run(
        [*prefix, *pytest_cases],
        cwd=REPO,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    return out


def test_cases_pass_and_leave_nothing(bpf_privileges):
    before = _ids()
    out = _run_cases()
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 30, out[-3000:]
    deadline = time.monotonic() + 5
    while True:
        left = {kind: ids - before[kind] for kind, ids in _ids().items()}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == {"prog": set(), "map": set(), "link": set()}


# A container's root or a user granted only these: bpf() works, walking ids and net programs do not.
CAP_BPF_ONLY = ["setpriv", "--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon",
                "--bounding-set=-all,+bpf,+perfmon"]  # fmt: skip


def test_cases_with_only_cap_bpf_and_perfmon_pass_or_skip_with_reasons(bpf_privileges, tmp_path):
    """Real refusals (EPERM from this kernel), not a simulated probe: no error, no failure."""
    if os.geteuid() != 0:
        pytest.skip("dropping to CAP_BPF+CAP_PERFMON with setpriv needs root; this run is not root")
    junit = tmp_path / "junit.xml"
    out = _run_cases("-rs", f"--junitxml={junit}", prefix=CAP_BPF_ONLY)
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("failures")) == ("0", "0"), out[-5000:]
    assert int(suite.get("tests", 0)) - int(suite.get("skipped", 0)) >= 30, out[-3000:]
    skips = [case.find("skipped") for case in suite.iter("testcase") if case.find("skipped") is not None]
    # What is refused here says which capability is missing; nothing is skipped without a reason.
    assert skips and all((s.get("message") or "").strip() for s in skips)
    messages = " ".join(s.get("message") or "" for s in skips)
    assert "listing BPF objects by id needs CAP_SYS_ADMIN" in messages
    assert "lacks CAP_NET_ADMIN, CAP_SYS_ADMIN" in messages
    assert "bpf_leak_guard is off in this session" in out


def test_collecting_the_lifecycle_cases_changes_nothing_in_the_process():
    """A host that only collects cases/ (every --kernel run does) gets no sys.path entry and no
    fork server preload from them: both wait for the first case that starts a child. (With
    importlib's import mode, as pytest's own prepend mode puts the test's directory there.)"""
    probe = (
        "import multiprocessing, sys\n"
        "before = list(sys.path)\n"
        "import pytest\n"
        "args = ['--collect-only', '-q', '-p', 'no:cacheprovider', '--import-mode=importlib']\n"
        "code = pytest.main([*args, 'cases/test_lifecycle.py'])\n"
        "import multiprocessing.forkserver\nserver = multiprocessing.forkserver._forkserver\n"
        "assert code == 0, code\n"
        "assert sys.path == before, set(sys.path) ^ set(before)\n"
        "assert server._preload_modules == ['__main__'], server._preload_modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-B", "-c", probe], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
