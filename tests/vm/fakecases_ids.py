"""Guest-side cases for the id tests of tests/vm/test_loop_fake.py: every item kind says what it is called.

Not collected by ``pytest tests/`` (the name does not match test_*.py). Each
test writes ``$HARNESS_RESULTS_DIR/ids/<its node id, quoted>`` with the ids it
sees in the guest (its node id and name, ``PYTEST_CURRENT_TEST``) and its
``tmp_path``; the file is created exclusively, so two tests of one id (two
kernels under the same id) fail the second. The loop test compares these with
the ids the host reported.
"""

import json
import os
import unittest
from pathlib import Path
from urllib.parse import quote

import pytest


def record(request, tmp_path: Path) -> None:
    node = request.node
    (tmp_path / "mine").write_text(node.nodeid)
    ids = Path(os.environ["HARNESS_RESULTS_DIR"]) / "ids"
    ids.mkdir(exist_ok=True)
    with open(ids / quote(node.nodeid, safe=""), "x") as f:
        seen = {
            "nodeid": node.nodeid,
            "name": node.name,
            "current": os.environ["PYTEST_CURRENT_TEST"],
            "tmp_path": str(tmp_path),
        }
        json.dump(seen, f)


def test_plain(request, tmp_path):
    record(request, tmp_path)


@pytest.mark.parametrize("n", [1, 2], ids=["one", "two-[x]"])
def test_parametrized(request, tmp_path, n):
    record(request, tmp_path)


class TestClass:
    def test_method(self, request, tmp_path):
        record(request, tmp_path)


class TestUnit(unittest.TestCase):
    @pytest.fixture(autouse=True)
    def _fixtures(self, request, tmp_path):
        self.request, self.tmp_path = request, tmp_path

    def test_unit(self):
        record(self.request, self.tmp_path)


def doctested():
    """
    >>> record(getfixture("request"), getfixture("tmp_path"))
    """
