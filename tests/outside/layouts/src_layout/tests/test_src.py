import sys
from pathlib import Path

import lay_src  # found through the pythonpath ini option


def expected_release() -> str:
    """The release this run must see, written at the top of the copied layout."""
    top = next(p for p in Path(__file__).resolve().parents if (p / "expected-release.txt").exists())
    return (top / "expected-release.txt").read_text().strip()


def test_runs_on_its_kernel():
    assert lay_src.release() == expected_release()


def test_the_p_plugin_is_loaded_and_rewritten(plug_answer):
    assert plug_answer == 42
    assert type(sys.modules["lay_src.plug"].__loader__).__name__ == "AssertionRewritingHook"
