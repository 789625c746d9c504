import os
from pathlib import Path


def expected_release() -> str:
    """The release this run must see, written at the top of the copied layout."""
    top = next(p for p in Path(__file__).resolve().parents if (p / "expected-release.txt").exists())
    return (top / "expected-release.txt").read_text().strip()


def test_outside_the_rootdir():
    assert os.uname().release == expected_release()
