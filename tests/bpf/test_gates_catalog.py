"""Version gates cannot rot: a gate above the newest catalog kernel is an error, not an eternal skip."""

from __future__ import annotations

from harness.bpf.gates import kernel_version
from harness.plugin import newest_catalog_kernel
from tests.vmtools import run_pytest


def test_gate_above_the_catalog_is_a_usage_error(tmp_path):
    proc = run_pytest(["tests/vmcases/gate_too_new.py"], tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "gates.py" not in proc.stderr and "Traceback" not in proc.stderr
    assert "test_from_the_future needs kernel >= 99.1" in proc.stderr
    assert f"newest kernel in the catalog ({newest_catalog_kernel()})" in proc.stderr


def test_newest_catalog_kernel_covers_both_debian_series():
    assert kernel_version(newest_catalog_kernel()) >= kernel_version("6.12")
