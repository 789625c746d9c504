"""harness.bpf.gates: version parsing, the skip-or-fail rule and marker handling."""

from __future__ import annotations

import os

import pytest
from packaging.version import Version

from harness.bpf import gates
from harness.bpf.gates import Gate
from harness.bpf.probes import Probe


@pytest.mark.parametrize(
    "release, expected",
    [
        ("6.1.0-56-amd64", "6.1"),
        ("6.12.57+deb13-amd64", "6.12"),
        ("6.18.44-fc-v669", "6.18"),
        ("5.15.0-91-generic", "5.15"),
        ("4.19", "4.19"),
    ],
)
def test_kernel_version_is_major_minor(release, expected):
    assert gates.kernel_version(release) == Version(expected)


def test_kernel_version_refuses_garbage():
    with pytest.raises(ValueError, match="cannot read a kernel version"):
        gates.kernel_version("linux")


def _gate(present: bool | None, reason: str = "") -> Gate:
    return Gate(
        "CGRP_STORAGE maps", "6.2", "CONFIG_CGROUPS", lambda: Probe("CGRP_STORAGE maps", present, reason)
    )


def test_below_minimum_skips_with_reason():
    with pytest.raises(pytest.skip.Exception) as exc:
        gates.apply(_gate(True), "6.1.0-56-amd64")
    assert exc.value.msg == "CGRP_STORAGE maps need kernel >= 6.2; running 6.1.0-56-amd64"


def test_missing_at_or_above_minimum_fails():
    with pytest.raises(pytest.fail.Exception) as exc:
        gates.apply(_gate(False, "bpf() answered EINVAL"), "6.12.57+deb13-amd64")
    assert exc.value.msg == (
        "kernel 6.12.57+deb13-amd64 >= 6.2 but CGRP_STORAGE maps are missing (bpf() answered EINVAL): "
        "regression or config (CONFIG_CGROUPS)"
    )


def test_present_at_minimum_runs():
    assert gates.apply(_gate(True), "6.2.0") is None


def test_a_probe_that_cannot_tell_is_a_skip_with_its_reason():
    with pytest.raises(pytest.skip.Exception, match="lacks CAP_SYS_ADMIN"):
        gates.apply(_gate(None, "cannot tell ...: this process lacks CAP_SYS_ADMIN"), "6.12.57+deb13-amd64")


class FakeItem:
    def __init__(self, *marks):
        self.marks = [m.mark for m in marks]

    def iter_markers(self, name):
        return (m for m in self.marks if m.name == name)


@pytest.mark.parametrize(
    "mark, release, reason",
    [
        (
            pytest.mark.requires(map_type="ARENA"),
            "6.1.0-56-amd64",
            "ARENA maps need kernel >= 6.9; running 6.1.0-56-amd64",
        ),
        (
            pytest.mark.requires(map_type="cgrp_storage"),
            "6.1.0-56-amd64",
            "CGRP_STORAGE maps need kernel >= 6.2",
        ),
        (
            pytest.mark.requires(prog_type="NETFILTER"),
            "6.1.0-56-amd64",
            "NETFILTER programs need kernel >= 6.4",
        ),
        # A helper gate takes the later of the helper's and the program type's first kernel.
        (
            pytest.mark.requires(helper=("NETFILTER", 1)),
            "6.1.0",
            "from NETFILTER programs need kernel >= 6.4",
        ),
        (
            pytest.mark.requires(helper=("KPROBE", 130)),
            "5.4.0",
            "bpf_ringbuf_output#130 from KPROBE programs need kernel >= 5.8",
        ),
        (pytest.mark.min_kernel("5.8"), "5.4.0-150-generic", "need kernel >= 5.8; running 5.4.0-150-generic"),
    ],
)
def test_check_gates_skips_old_kernels(mark, release, reason):
    with pytest.raises(pytest.skip.Exception) as exc:
        gates.check_gates(FakeItem(mark), release)
    assert reason in exc.value.msg


def test_min_kernel_at_or_above_runs():
    assert gates.check_gates(FakeItem(pytest.mark.min_kernel("5.8")), "6.1.0-56-amd64") is None


@pytest.mark.parametrize(
    "mark",
    [
        pytest.mark.requires(map_type="NO_SUCH_MAP"),
        pytest.mark.requires(prog_type="NO_SUCH_PROG"),
        pytest.mark.requires(helper=("KPROBE", 99999)),
        pytest.mark.requires(colour="blue"),
    ],
)
def test_unknown_requirements_are_usage_errors(mark):
    with pytest.raises(pytest.UsageError):
        gates.check_gates(FakeItem(mark), "6.12.0")


def test_real_probe_on_this_kernel(bpf_privileges):
    """On the running kernel a gate below its release must pass (these are all in 6.1 and later)."""
    item = FakeItem(
        pytest.mark.requires(map_type="RINGBUF"),
        pytest.mark.requires(prog_type="CGROUP_SKB"),
        pytest.mark.requires(helper=("SOCKET_FILTER", 1)),
    )
    assert gates.check_gates(item, os.uname().release) is None
