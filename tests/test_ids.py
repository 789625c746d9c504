"""harness.ids: the one grammar for "which kernel is this test id for", on ids of every item kind."""

from __future__ import annotations

import pytest

from harness import ids

# exact catalog names hold dashes, dots and "+" (the Debian revision), like a local release
KERNELS = [
    "6.1.192-3",
    "6.1.192-2",
    "6.12.117-1.deb12u1",
    "6.12.117-1",
    "6.1.0-47-amd64",
    "7.3.4-1.bpo13+1",
    "6.8",
]

CASES = [
    "t.py::test_plain",  # function
    "t.py::TestPlain::test_method",  # method of a plain class
    "t.py::TestUnit::test_case",  # unittest.TestCase method
    "pkg/mod.py::pkg.mod.helper",  # doctest (--doctest-modules)
    "README.md::README.md",  # doctest of a text file
    "t.py::test_direct[HASH-4]",  # parametrized
    "t.py::test_indirect[cfg0]",  # indirect parametrization
    "t.py::test_dots[1.2.3-a.b]",  # params with dots
    "t.py::test_dashes[-x--y-]",  # params with dashes
    "t.py::test_brackets[a[1]-[b]]",  # params with brackets
    "t.py::test_kernelish[6.1]",  # a param that looks like a kernel
    "sub/dir/t.py::TestX::test_y[a::b]",  # "::" inside a param
    "items.yaml::spec one",  # another plugin's item
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_an_id_splits_back_into_its_case_and_kernel(case, kernel):
    nodeid = ids.with_kernel(case, kernel)
    assert nodeid != case and kernel in nodeid
    assert ids.split(nodeid, KERNELS) == (case, kernel)
    assert ids.case_of(nodeid, kernel) == case


def test_the_kernel_is_the_last_parameter():
    assert ids.with_kernel("t.py::test_a", "6.1.192-3") == "t.py::test_a[6.1.192-3]"
    assert ids.with_kernel("t.py::test_b[HASH-4]", "6.1.192-3") == "t.py::test_b[HASH-4-6.1.192-3]"
    assert ids.with_kernel("m.py::m.f", "6.1.192-3") == "m.py::m.f[6.1.192-3]"


@pytest.mark.parametrize("case", ["t.py::test_a", "t.py::test_b[HASH-4]", "t.py::test_c[x-6.1.192]"])
def test_builds_of_one_version_are_told_apart(case):
    for kernel in ("6.1.192-2", "6.1.192-3", "6.12.117-1", "6.12.117-1.deb12u1"):
        assert ids.split(ids.with_kernel(case, kernel), KERNELS) == (case, kernel)


def test_a_kernel_name_is_usable_in_a_k_expression():
    """pytest -k takes names with dashes, dots and "+", but not "~": why names write Debian's "~" as "."."""
    from _pytest.mark.expression import Expression

    for kernel in KERNELS:
        assert Expression.compile(kernel).evaluate(kernel.__eq__)
    with pytest.raises(Exception, match="unexpected character"):
        Expression.compile("7.3.4-1~bpo13+1")


@pytest.mark.parametrize("case", CASES)
def test_an_id_without_a_kernel_of_the_run_has_none(case):
    assert ids.split(case, KERNELS) == (case, None)
    assert ids.split(ids.with_kernel(case, "5.10.262-1"), KERNELS)[1] is None


def test_the_longest_kernel_name_wins():
    # "6.1.0-47-amd64" ends with "amd64"-like tails of shorter names; a local kernel named "47-amd64" must lose
    nodeid = ids.with_kernel("t.py::test_a", "6.1.0-47-amd64")
    assert ids.split(nodeid, ["47-amd64", "6.1.0-47-amd64"]) == ("t.py::test_a", "6.1.0-47-amd64")
