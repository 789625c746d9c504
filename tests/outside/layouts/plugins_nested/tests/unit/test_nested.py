import os
import sys
from pathlib import Path


def expected_release() -> str:
    """The release this run must see, written at the top of the copied layout."""
    top = next(p for p in Path(__file__).resolve().parents if (p / "expected-release.txt").exists())
    return (top / "expected-release.txt").read_text().strip()


def rewritten(name: str) -> bool:
    return type(sys.modules[name].__loader__).__name__ == "AssertionRewritingHook"


def test_runs_on_its_kernel(doubled):
    assert doubled(2) == 4
    assert os.uname().release == expected_release()


def test_plugin_modules_are_rewritten():
    assert rewritten("nested_helpers")
    assert rewritten("xdist._version")
