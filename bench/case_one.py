"""One trivial test: the boot benchmark (B1) runs it so that boot, not the test, is measured."""

from __future__ import annotations


def test_one():
    assert sum(range(3)) == 3
