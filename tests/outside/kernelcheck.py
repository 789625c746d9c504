"""Helpers of this project: which kernel is this code running on?

>>> running_release("doctest of the module") == os.uname().release
True
"""

import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent


def expected_kernels() -> dict[str, str]:
    """The kernels whoever runs this project expects, release -> the name test ids carry
    (expected-kernels.txt beside this file, a "release name" line each)."""
    path = HERE / "expected-kernels.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split() for line in lines if line.strip())


def expected_releases() -> set[str]:
    return set(expected_kernels())


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


def check_own_ids(nodeid: str, name: str | None, when: str) -> None:
    """A test's own ids name the kernel it runs on, as the harness names it; an artifact says so.

    The artifact, ``$HARNESS_RESULTS_DIR/ids/<node id, quoted>``, is created
    exclusively: a test of the same id on another kernel would fail here."""
    expected = expected_kernels()
    if not expected:  # not run by the harness's tests: nothing to expect
        return
    kernel = expected.get(os.uname().release)
    assert kernel, f"ran on {os.uname().release}, expected one of {sorted(expected)}"
    suffixes = (f"[{kernel}]", f"-{kernel}]")
    assert nodeid.endswith(suffixes), f"{nodeid} does not name kernel {kernel}"
    assert name is None or (name.endswith(suffixes) and nodeid.endswith(f"::{name}")), (nodeid, name)
    current = os.environ["PYTEST_CURRENT_TEST"]
    assert current == f"{nodeid} ({when})", current
    ids = Path(os.environ["HARNESS_RESULTS_DIR"]) / "ids"
    ids.mkdir(exist_ok=True)
    with open(ids / quote(nodeid, safe=""), "x") as f:
        json.dump({"nodeid": nodeid, "name": name, "current": current, "release": os.uname().release}, f)
