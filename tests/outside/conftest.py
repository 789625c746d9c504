"""This project's own fixtures, option and a small plugin that collects *.kcheck files."""

import os

import pytest
from kernelcheck import check_own_ids, running_release

collect_ignore = ["layouts"]  # projects of their own (tests/plugin/test_layouts.py)


def pytest_addoption(parser):
    parser.addoption("--outside-flag", default="unset", help="an option of this project's own")


@pytest.fixture(scope="session")
def session_release():
    return running_release("session fixture")


@pytest.fixture(scope="module")
def module_release():
    return running_release("module fixture")


@pytest.fixture(autouse=True)
def own_ids(request):
    """Every test that has fixtures (functions, methods, unittest methods, doctests, parameters)
    checks the ids it has where it runs."""
    check_own_ids(request.node.nodeid, request.node.name, "setup")


@pytest.fixture
def doubled(request):
    """Indirect parametrization: the parameter arrives here first."""
    return request.param * 2


@pytest.fixture
def outside_flag(request):
    return request.config.getoption("--outside-flag")


class KcheckFile(pytest.File):
    def collect(self):
        for line in self.path.read_text().splitlines():
            if line.strip():
                yield KcheckItem.from_parent(self, name=line.strip())


class KcheckItem(pytest.Item):
    def runtest(self):
        assert running_release(f"kcheck {self.name}") == os.uname().release
        # another plugin's item keeps its name (its runtest may look its test up by it)
        check_own_ids(self.nodeid, None, "call")
        assert self.name in [line.strip() for line in self.path.read_text().splitlines()]

    def reportinfo(self):
        return self.path, 0, f"kcheck {self.name}"


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".kcheck":
        return KcheckFile.from_parent(parent, path=file_path)
    return None
