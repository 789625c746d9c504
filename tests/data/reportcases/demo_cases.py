"""Cases with known outcomes for the results/report tests: one of each outcome, one that differs by kernel.

Not collected by ``pytest tests/`` (the name does not match test_*.py);
tests/data/make_fixtures.py runs it with ``--kernel`` to produce the saved
results files, and tests/test_results.py runs it on the host.
"""

import os

import pytest

from harness import insn as I
from harness import libbpf as L
from harness.libbpf import ProgType


def test_passes():
    assert 6 * 7 == 42


def test_fails_on_6_12_only():
    # a per-kernel difference, so merged matrices are not uniform
    assert not os.uname().release.startswith("6.12"), f"running {os.uname().release}"


def test_verifier_rejects_missing_r0():
    # exit without setting R0: the verifier says EACCES "R0 !read_ok" on every kernel
    fd = L.prog_load(ProgType.SOCKET_FILTER, "no_r0", "GPL", I.program(I.exit_()))
    os.close(fd)


def test_skips():
    pytest.skip("skipped on purpose by the demo")


@pytest.mark.xfail(reason="expected to fail by the demo", strict=True)
def test_expected_failure():
    assert False


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture set-up fails on purpose")


def test_setup_error(broken_fixture):
    pass
