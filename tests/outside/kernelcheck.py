"""Helpers of this project: which kernel is this code running on?

>>> running_release("doctest of the module") == os.uname().release
True
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def expected_releases() -> set[str]:
    """The kernels whoever runs this project expects (expected-releases.txt beside this file)."""
    path = HERE / "expected-releases.txt"
    return set(path.read_text().split()) if path.exists() else set()


def running_release(who: str) -> str:
    """The running kernel's release; says so on stderr and checks it is one of the expected."""
    release = os.uname().release
    print(f"OUTSIDE {who} ran on {release}", file=sys.stderr)
    expected = expected_releases()
    assert not expected or release in expected, f"{who} ran on {release}, expected one of {sorted(expected)}"
    return release


def add(a: int, b: int) -> int:
    """
    >>> add(1, 2)
    3
    >>> running_release("doctest of add") in expected_releases() or not expected_releases()
    True
    """
    return a + b
