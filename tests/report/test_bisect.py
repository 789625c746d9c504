"""Bisect: the search with fake step runners (catalog and git), and one real bisect across 6.1 and 6.12 in VMs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.kernels.catalog import load_catalog
from harness.report import bisect
from harness.report.bisect import BisectError, StepResult
from harness.versions import kernel_order

ROOT = Path(__file__).resolve().parents[2]
CATALOG = [
    "6.1.170-3",
    "6.1.176-1",
    "6.1.187-1",
    "6.1.190-1",
    "6.1.192-1",
    "6.1.192-2",
    "6.12.107-1",
    "6.12.111-1.deb12u1",
    "6.12.113-1.deb12u1",
    "6.12.115-2.deb12u1",
    "6.12.117-1",
]
CASE = "cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd"


class Fake:
    """A step runner whose outcome per kernel is given; records what was run."""

    def __init__(self, outcomes: dict[str, str]):
        self.outcomes = outcomes
        self.ran: list[tuple[str, str, str]] = []

    def __call__(self, spec: str, kernel: str, nodeid: str) -> StepResult:
        self.ran.append((spec, kernel, nodeid))
        return StepResult(kernel, kernel, self.outcomes[kernel], f"pytest --kernel {spec} '{nodeid}'")


def _series_change(first_new: str, old="skipped", new="passed") -> dict[str, str]:
    i = CATALOG.index(first_new)
    return {k: (old if j < i else new) for j, k in enumerate(CATALOG)}


@pytest.mark.parametrize("first_new", CATALOG[1:])
def test_finds_every_possible_boundary_in_log_steps(first_new):
    fake = Fake(_series_change(first_new))
    result = bisect.bisect_catalog("6.1.170-3", "6.12.117-1", CASE, fake, names=CATALOG)
    assert result.first_changed == first_new
    assert (result.before, result.after) == ("skipped", "passed")
    assert result.last_same == CATALOG[CATALOG.index(first_new) - 1]
    # the good end, ceil(log2(10)) halvings, and the bad end only when it is the answer
    assert len(fake.ran) <= 1 + 4 + (first_new == CATALOG[-1])
    assert all(nodeid == f"{CASE}[{k}]" for _, k, nodeid in fake.ran)


def test_four_kernels_across_series_take_three_runs():
    fake = Fake(_series_change("6.12.107-1"))
    printed = []
    result = bisect.bisect_catalog(
        "6.1.190-1", "6.12.111-1.deb12u1", CASE, fake, printed.append, names=CATALOG
    )
    assert result.first_changed == "6.12.107-1"
    assert [k for _, k, _ in fake.ran] == ["6.1.190-1", "6.1.192-2", "6.12.107-1"]
    assert [s.command for s in printed] == [f"pytest --kernel {k} '{CASE}[{k}]'" for _, k, _ in fake.ran]


def test_bad_end_is_run_only_when_it_is_the_answer():
    fake = Fake(_series_change("6.12.111-1.deb12u1"))
    result = bisect.bisect_catalog("6.1.190-1", "6.12.111-1.deb12u1", CASE, fake, names=CATALOG)
    assert result.first_changed == "6.12.111-1.deb12u1" and fake.ran[-1][1] == "6.12.111-1.deb12u1"


def test_no_change_is_an_error_not_an_answer():
    fake = Fake(dict.fromkeys(CATALOG, "passed"))
    with pytest.raises(BisectError, match="no change to find"):
        bisect.bisect_catalog("6.1.190-1", "6.12.111-1.deb12u1", CASE, fake, names=CATALOG)


def test_good_outcome_saves_the_first_run_and_reverse_order_works():
    # newer kernel as --good: the search walks downwards
    outcomes = _series_change("6.12.107-1", old="failed", new="passed")
    fake = Fake(outcomes)
    result = bisect.bisect_catalog(
        "6.12.117-1", "6.1.170-3", CASE, fake, names=CATALOG, good_outcome="passed"
    )
    assert result.first_changed == "6.1.192-2" and result.after == "failed"
    assert fake.ran[0][1] != "6.12.117-1"


def test_node_id_may_carry_a_kernel_and_params_keep_their_place():
    fake = Fake(_series_change("6.12.107-1"))
    bisect.bisect_catalog("6.1.190-1", "6.12.107-1", "t.py::test_x[HASH-6.1.190-1]", fake, names=CATALOG)
    assert [n for _, _, n in fake.ran] == [f"t.py::test_x[HASH-{k}]" for _, k, _ in fake.ran]
    assert fake.ran[0][1] == "6.1.190-1" and len(fake.ran) >= 2


def test_real_catalog_stays_within_the_source_of_both_ends(monkeypatch):
    debian = sorted((e.name for e in load_catalog().entries if e.source == "debian"), key=kernel_order)
    first_612 = next(n for n in debian if n.startswith("6.12."))
    outcomes = {n: "passed" if n.startswith("6.12.") else "skipped" for n in debian}
    fake = Fake(outcomes)
    result = bisect.bisect_catalog("6.1.190", "6.12.111", CASE, fake)
    assert result.first_changed == first_612
    assert all(k.startswith(("6.1.", "6.12.")) for _, k, _ in fake.ran)
    with pytest.raises(KeyError):  # with mainline builds the search lands on 6.6/6.8, absent from the fake
        bisect.bisect_catalog("6.1.190", "6.12.111", CASE, Fake(outcomes), source="any")


def test_series_ends_and_mainline_steps_are_named_unambiguously():
    """--good 5.10 is Debian's newest 5.10.y; a mainline step named "5.10" boots as mainline:5.10."""
    fake = Fake(dict.fromkeys([e.name for e in load_catalog().entries], "skipped") | {"6.6": "passed"})
    result = bisect.bisect_catalog("mainline:5.10", "6.6", CASE, fake, source="ubuntu-mainline")
    assert result.first_changed == "6.6"
    assert ("mainline:5.10", "5.10", f"{CASE}[5.10]") in fake.ran
    fake = Fake(dict.fromkeys([e.name for e in load_catalog().entries], "passed") | {"5.10.262-1": "skipped"})
    assert bisect.bisect_catalog("5.10", "6.1", CASE, fake).last_same == "5.10.262-1"


def test_unknown_kernel_names_the_choices():
    with pytest.raises(BisectError, match="6.9.1 not in the catalog"):
        bisect.bisect_catalog("6.1.190-1", "6.9.1", CASE, Fake({}), names=CATALOG)


# -- git --------------------------------------------------------------------


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def tree(tmp_path):
    """A git repo of 9 commits standing in for a kernel tree; commit 6 flips a 'verifier' file."""
    t = tmp_path / "linux"
    t.mkdir()
    _git(t, "init", "-q", "-b", "main")
    _git(t, "config", "user.email", "t@example.invalid")
    _git(t, "config", "user.name", "t")
    shas = []
    for i in range(9):
        (t / "verifier.c").write_text("reject\n" if i >= 6 else "accept\n")
        (t / "n").write_text(str(i))
        _git(t, "add", "-A")
        _git(t, "commit", "-q", "-m", f"commit {i}")
        shas.append(_git(t, "rev-parse", "HEAD"))
    return t, shas


def test_git_bisect_names_the_commit_that_flips_the_case(tree):
    t, shas = tree
    built = []

    def build(path: Path) -> str:
        built.append(_git(path, "rev-parse", "HEAD"))
        return f"6.1.192-{(path / 'n').read_text()}"

    def run(spec: str, kernel: str, nodeid: str) -> StepResult:
        outcome = "passed" if (Path(spec) / "verifier.c").read_text() == "accept\n" else "failed"
        return StepResult(kernel, kernel, outcome, f"pytest --kernel {spec} '{nodeid}'")

    result = bisect.bisect_git(t, shas[0], shas[8], "cases/t.py::test_v", run, build)
    assert result.first_changed == shas[6]
    assert (result.before, result.after) == ("passed", "failed")
    assert len(built) <= 1 + 3
    assert _git(t, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # bisect reset
    assert not (t / ".git" / "BISECT_LOG").exists()


def test_git_bisect_skips_commits_that_do_not_build(tree):
    t, shas = tree

    def build(path: Path) -> str:
        if (path / "n").read_text() == "4":
            raise RuntimeError("compiler error")
        return "k"

    def run(spec, kernel, nodeid):
        outcome = "passed" if (Path(spec) / "verifier.c").read_text() == "accept\n" else "failed"
        return StepResult(kernel, kernel, outcome, "x")

    assert bisect.bisect_git(t, shas[0], shas[8], "t.py::t", run, build).first_changed == shas[6]


def test_git_bisect_refuses_a_dirty_tree(tree):
    t, shas = tree
    (t / "n").write_text("dirty")
    with pytest.raises(BisectError, match="uncommitted changes"):
        bisect.bisect_git(t, shas[0], shas[8], "t.py::t", Fake({}), lambda p: "k")


# -- real VMs ---------------------------------------------------------------


# bookworm's build of 6.12.107 (6.12.107-1~deb12u1): Debian orders it before trixie's 6.12.107-1
FIRST = "6.12.107-1.deb12u1"


@pytest.mark.vm
def test_real_bisect_across_series_finds_where_cgroup_storage_appears(tmp_path):
    """6.1.190 .. 6.12.111 (7 catalog kernels): CGRP_STORAGE is skipped on 6.1 (before 6.2), passes on 6.12.

    Three boots under TCG: 6.1.190-1 (reference), 6.1.192-3, 6.12.107-1.deb12u1.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from vmtools import require_vm_host

    require_vm_host()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "bisect",
            "--good",
            "6.1.190",
            "--bad",
            "6.12.111",
            "--workdir",
            str(tmp_path),
            CASE,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        f"first kernel where the outcome changes: {FIRST} (skipped on 6.1.192-3 and older, passed from {FIRST})"
        in r.stdout
    )
    steps = [line for line in r.stdout.splitlines() if line.startswith("bisect: 6.")]
    assert [s.split()[1] for s in steps] == ["6.1.190-1", "6.1.192-3", FIRST]
    assert f"rerun: pytest --kernel {FIRST} '{CASE}[{FIRST}]'" in r.stdout
