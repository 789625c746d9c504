"""The cases on Debian's 6.1 and 6.12 kernels, two VMs side by side: the product's main job."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.vmtools import junit_outcomes, require_vm_host, run_pytest

pytestmark = pytest.mark.vm

# where the two kernels really differ (map types new in 6.2 and 6.9)
# case -> words of its skip reason
ONLY_612 = {"cases/test_maps.py::test_arena": "ARENA maps need kernel >= 6.9",
            "cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd": "CGRP_STORAGE maps need kernel >= 6.2"}
ONLY_61 = {"cases/test_maps.py::test_arena_is_unknown_before_6_9": "kernel has ARENA maps"}


def test_cases_pass_on_61_and_612_and_show_where_they_differ(tmp_path):
    require_vm_host()
    proc = run_pytest(["--kernel", "6.1", "--kernel", "6.12", "-n", "2", "cases/"], tmp_path, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    results = junit_outcomes(tmp_path / "junit.xml")
    kernels = {nodeid.rsplit("[", 1)[1].rstrip("]").rsplit("-", 1)[-1] for nodeid in results}
    assert len(kernels) == 2 and all(k.startswith(("6.1.", "6.12.")) for k in kernels), kernels
    k61 = next(k for k in kernels if k.startswith("6.1."))
    k612 = next(k for k in kernels if k.startswith("6.12."))
    for kernel, gated in ((k61, ONLY_612), (k612, ONLY_61)):
        mine = {n: r for n, r in results.items() if n.endswith(f"{kernel}]")}
        passed = [n for n, (o, _) in mine.items() if o == "passed"]
        skipped = {n.split("[")[0]: m for n, (o, m) in mine.items() if o == "skipped"}
        assert len(passed) >= 30, f"{kernel}: only {len(passed)} passed"
        assert set(skipped) == set(gated), (kernel, skipped)
        for case, words in gated.items():
            assert words in skipped[case], (kernel, case, skipped[case])
    # the kernel is a JUnit property of every test case
    props = {p.get("value") for p in ET.parse(tmp_path / "junit.xml").getroot().iter("property")
             if p.get("name") == "kernel"}
    assert props == kernels
    assert "cases x kernels" in out  # the matrix at the end of the terminal summary
