"""Debian kernels of both package layouts boot under the harness and run cases: 7.3 (split) and 5.10 (single).

One pytest run, the two kernels one after the other (one VM at a time),
two cases: a hash map every kernel has, and the bloom filter, which 5.10
lacks (gate: 5.16), so it must be skipped there with the gate's reason and
pass on 7.3. Both kernels come from the cache ci/setup.sh fills (or are
fetched here, verified, from the Debian archive).
"""

from __future__ import annotations

import json

import pytest

from harness.kernels.catalog import resolve_spec
from tests.vmtools import require_vm_host, run_pytest

CASES = [
    "cases/test_maps.py::test_common_map_types_read_back[hash-no-prealloc]",
    "cases/test_maps.py::test_common_map_types_read_back[bloom-filter]",
]


@pytest.mark.vm
def test_split_7x_and_single_5_10_boot_and_run_cases(tmp_path):
    require_vm_host()
    new, old = resolve_spec("7.3"), resolve_spec("5.10")
    assert len(new.debs) == 3 and len(old.debs) == 1  # the two layouts
    r = run_pytest(["--kernel", "7.3", "--kernel", "5.10", *CASES], tmp_path, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    kernels = {k["name"]: k for k in results["kernels"]}
    assert kernels[new.name]["release"] == new.release and kernels[old.name]["release"] == old.release
    assert all(k["source"] == "debian" and k["boots"] == 1 for k in kernels.values())
    got = {(c["case"].rsplit("[", 1)[1].rstrip("]"), c["kernel"]): c for c in results["cases"]}
    assert {k: c["outcome"] for k, c in got.items()} == {
        ("hash-no-prealloc", new.name): "passed",
        ("bloom-filter", new.name): "passed",
        ("hash-no-prealloc", old.name): "passed",
        ("bloom-filter", old.name): "skipped",
    }
    assert "BLOOM_FILTER maps need kernel >= 5.16" in got[("bloom-filter", old.name)]["skip_reason"]
