import os

import pytest
from kernelcheck import running_release


def test_plain():
    running_release("test_plain")


@pytest.mark.parametrize(
    "version, label", [("1.2.3", "a.b"), ("-x-", "[y]")], ids=["1.2.3-a.b", "dash-[bracket]"]
)
def test_direct(version, label):
    running_release(f"test_direct {version} {label}")


@pytest.mark.parametrize("doubled", [2, 5], indirect=True)
def test_indirect(doubled):
    running_release("test_indirect")
    assert doubled in (4, 10)


def test_fixtures_of_every_scope(session_release, module_release):
    assert session_release == module_release == running_release("test_fixtures_of_every_scope")


def test_own_option_arrives(outside_flag):
    running_release("test_own_option_arrives")
    assert outside_flag == "given"


def test_uname_is_not_the_caller_environment():
    assert os.uname().sysname == "Linux"
    running_release("test_uname_is_not_the_caller_environment")
