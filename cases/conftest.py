"""Cases-wide rules: every case needs bpf() and must leave no BPF object behind.

The fixtures themselves (bpf_privileges, bpf_leak_guard, bpffs, cgroup2)
come from harness.bpf.fixtures, which the harness plugin loads.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _bpf_case(bpf_privileges, bpf_leak_guard):
    """Autouse, so it is set up first and torn down last: the guard sees every fd closed."""
    yield


@pytest.fixture
def close_later():
    """close_later(fd) -> fd: the fd is closed when the test ends, pass or fail."""
    fds: list[int] = []

    def keep(fd: int) -> int:
        fds.append(fd)
        return fd

    yield keep
    for fd in reversed(fds):
        os.close(fd)
