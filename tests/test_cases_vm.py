"""The cases on Debian's 6.1 and 6.12 kernels, two VMs side by side: the product's main job."""

from __future__ import annotations

import pytest

from tests.vmtools import junit_cases, require_vm_host, run_pytest

pytestmark = pytest.mark.vm

# where the two kernels really differ (map types new in 6.2 and 6.9)
# case -> words of its skip reason
ONLY_612 = {
    "cases/test_maps.py::test_arena": "ARENA maps need kernel >= 6.9",
    "cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd": "CGRP_STORAGE maps need kernel >= 6.2",
}
ONLY_61 = {"cases/test_maps.py::test_arena_is_unknown_before_6_9": "kernel has ARENA maps"}


def test_cases_pass_on_61_and_612_and_show_where_they_differ(tmp_path):
    require_vm_host()
    proc = run_pytest(["--kernel", "6.1", "--kernel", "6.12", "-n", "2", "cases/"], tmp_path, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    cases = junit_cases(tmp_path / "junit.xml")
    kernels = {kernel for _, kernel, _, _ in cases}  # the JUnit property of every test case
    assert len(kernels) == 2 and all(k.startswith(("6.1.", "6.12.")) for k in kernels), kernels
    k61 = next(k for k in kernels if k.startswith("6.1."))
    k612 = next(k for k in kernels if k.startswith("6.12."))
    for kernel, gated in ((k61, ONLY_612), (k612, ONLY_61)):
        mine = [(nodeid, outcome, message) for nodeid, k, outcome, message in cases if k == kernel]
        assert all(kernel in nodeid for nodeid, _, _ in mine)  # the kernel is part of every test id
        passed = [nodeid for nodeid, outcome, _ in mine if outcome == "passed"]
        skipped = {nodeid.split("[")[0]: message for nodeid, outcome, message in mine if outcome == "skipped"}
        assert len(passed) >= 30, f"{kernel}: only {len(passed)} passed"
        assert len(passed) + len(skipped) == len(mine), [m for m in mine if m[1] not in ("passed", "skipped")]
        assert set(skipped) == set(gated), (kernel, skipped)
        for case, words in gated.items():
            assert words in skipped[case], (kernel, case, skipped[case])
    assert "cases x kernels" in out  # the matrix at the end of the terminal summary
