"""Guest-side cases for the run-ahead tests of tests/vm/test_loop_fake.py: fixture scopes, logged as they happen.

Not collected by ``pytest tests/`` (the name does not match test_*.py). Every
event is a line appended to ``$HARNESS_RESULTS_DIR/events.txt``, which the
fake VM writes through to the host; each test also logs whether the guest
agent started it ahead of the host's Run for it (protocol.Run.ahead).
"""

import os
import unittest
from pathlib import Path

import pytest


def log(event: str) -> None:
    with open(Path(os.environ["HARNESS_RESULTS_DIR"]) / "events.txt", "a") as f:
        f.write(event + "\n")


def _ahead(config) -> bool:
    agent = next(p for p in config.pluginmanager.get_plugins() if hasattr(p, "running_ahead"))
    return agent.running_ahead


@pytest.fixture(scope="module")
def module_fixture():
    log("module setup")
    yield
    log("module teardown")


@pytest.fixture(autouse=True)
def each_test(request):
    log(f"{request.function.__name__} {'ahead' if _ahead(request.config) else 'asked'}")


class TestScoped:
    @pytest.fixture(scope="class", autouse=True)
    def class_fixture(self):
        log("class setup")
        yield
        log("class teardown")

    def test_one(self, module_fixture):
        pass

    def test_two(self, module_fixture):
        pass


def test_between(module_fixture):
    pass


class TestUnit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        log("setUpClass")

    @classmethod
    def tearDownClass(cls):
        log("tearDownClass")

    def test_a(self):
        log("unit test_a")

    def test_b(self):
        log("unit test_b")


def test_last(module_fixture):
    pass


def test_fails():
    raise AssertionError("the failure that stops -x")


def test_marker():
    log("test_marker ran")
