"""200 trivial tests: the per-test overhead benchmark (B2) runs them through the harness.

The body is deliberately almost free, so what a run costs beyond a plain loop
over ``body`` (bench/guest_loop.py) is the harness's own per-test cost.
"""

from __future__ import annotations

import pytest

COUNT = 200


def body(i: int) -> None:
    assert sum(range(i % 7 + 1)) >= 0


@pytest.mark.parametrize("i", range(COUNT))
def test_trivial(i):
    body(i)
