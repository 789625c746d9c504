import os
from pathlib import Path

import pytest


def expected_release() -> str:
    """The release this run must see, written at the top of the copied layout."""
    top = next(p for p in Path(__file__).resolve().parents if (p / "expected-release.txt").exists())
    return (top / "expected-release.txt").read_text().strip()


def test_one():
    assert os.uname().release == expected_release()


def test_two():
    assert os.uname().release == expected_release()


@pytest.mark.parametrize("n", [1, 2])
def test_three(n):
    assert n in (1, 2) and os.uname().release == expected_release()
