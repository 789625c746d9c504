"""A project that is not this repository, in every test style, under --kernel: each item runs in
each kernel its id names, and nowhere else (tests/outside is that project)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness import ids
from harness.kernels import resolve
from harness.report import records
from tests.vmtools import require_vm_host

OUTSIDE = Path(__file__).resolve().parents[1] / "outside"
KERNELS = ["6.1", "6.12"]
RAN_ON = re.compile(r"OUTSIDE (.+?) ran on (\S+)")


def project(tmp_path: Path) -> Path:
    """A copy of the outside project, expecting the kernels of KERNELS (resolved from the cache):
    each release, and the name the harness gives it in test ids."""
    dest = tmp_path / "project"
    shutil.copytree(OUTSIDE, dest, ignore=shutil.ignore_patterns("__pycache__", "results"))
    kernels = [resolve(spec, fetch=False, progress=False) for spec in KERNELS]
    (dest / "expected-kernels.txt").write_text("".join(f"{k.release} {k.name}\n" for k in kernels))
    return dest


def pytest_in(where: Path, *args: str, python: str = sys.executable, timeout: float = 900):
    return subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plain_ids(where: Path) -> list[str]:
    """The project's test ids as pytest collects them without the harness's help."""
    r = pytest_in(where, "--collect-only", "-q", "--doctest-modules", "-p", "no:bpf_vm_harness")
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if "::" in line]


def guest_words(junit: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(test name, kernel property) -> [(who, release)] from the output each test wrote in its guest."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kernel = next(p.get("value") for p in case.iter("property") if p.get("name") == "kernel")
        text = "".join((el.text or "") for tag in ("system-out", "system-err") for el in case.iter(tag))
        out[(case.get("name"), kernel)] = RAN_ON.findall(text)
    return out


@pytest.mark.vm
def test_every_item_kind_runs_once_in_each_kernel_and_never_on_the_host(tmp_path):
    require_vm_host()
    where = project(tmp_path)
    cases = plain_ids(where)
    assert len(cases) == 17  # functions, methods, unittest, doctests, parametrized, kcheck items
    r = pytest_in(
        where,
        *[a for k in KERNELS for a in ("--kernel", k)],
        "--doctest-modules",
        "--outside-flag",
        "given",
        "--results-dir",
        str(tmp_path / "r"),
        "--junitxml",
        str(tmp_path / "junit.xml"),
        "-o",
        "junit_logging=all",
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    assert f"{2 * len(cases)} passed" in r.stdout

    run = records.load(tmp_path / "r" / "results.json")
    assert run.complete
    releases = {k.name: k.release for k in run.kernels}
    assert len(releases) == 2 and all(k.source != "host" for k in run.kernels), run.kernels
    host = os.uname().release
    assert host not in releases.values()
    # every item twice, once per kernel, each passing, none on the host
    assert Counter(c.case for c in run.cases) == {case: 2 for case in cases}
    assert {(c.case, c.kernel) for c in run.cases} == {(case, k) for case in cases for k in releases}
    assert {c.outcome for c in run.cases} == {"passed"}

    # and the guests say so themselves: every line a test printed names the kernel its id names
    words = guest_words(tmp_path / "junit.xml")
    assert len(words) == 2 * len(cases)
    for (name, kernel), said in words.items():
        assert name.endswith(f"{kernel}]"), name
        assert said, f"{name} printed nothing"
        assert {release for _, release in said} == {releases[kernel]}, (name, said)
    everything = r.stdout + r.stderr + (tmp_path / "junit.xml").read_text()
    assert f"ran on {host}" not in everything
    for kernel, release in releases.items():  # unittest's class fixtures ran in the guest too
        said = [w for (name, k), ws in words.items() if k == kernel for w in ws]
        assert ("setUpClass", release) in said and ("tearDownClass", release) in said
        assert ("setup_class", release) in said and ("package fixture", release) in said

    # each test saw in its guest the id the host reports (kernelcheck.check_own_ids), and the
    # artifact it named after it exists once per kernel: none was overwritten by another kernel's
    written = {unquote(p.name): json.loads(p.read_text()) for p in (tmp_path / "r" / "ids").iterdir()}
    assert set(written) == {c.nodeid for c in run.cases}
    for c in run.cases:
        seen = written[c.nodeid]
        assert seen["release"] == releases[c.kernel]
        kcheck = c.case.startswith("checks.kcheck::")  # another plugin's item: its name is its own
        assert seen["name"] == (None if kcheck else c.nodeid.rpartition("::")[2])
        assert seen["current"] == f"{c.nodeid} ({'call' if kcheck else 'setup'})"


def collected(where: Path, *args: str) -> list[str]:
    kernels = [a for k in KERNELS for a in ("--kernel", k)]
    r = pytest_in(where, *kernels, "--offline", "--collect-only", "-q", "--doctest-modules", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_every_item_gets_one_id_per_kernel_in_kernel_order(tmp_path):
    """Collection only (no boot): the ids the harness makes for every item kind, parsed back by harness.ids."""
    where = project(tmp_path)
    cases = plain_ids(where)
    names = [resolve(spec, fetch=False, progress=False).name for spec in KERNELS]
    got = collected(where)
    assert got == [ids.with_kernel(case, name) for name in names for case in cases]
    assert [ids.split(nodeid, names) for nodeid in got] == [(case, name) for name in names for case in cases]


def test_an_id_with_a_kernel_selects_that_kernel_only(tmp_path):
    where = project(tmp_path)
    new = resolve(KERNELS[1], fetch=False, progress=False).name
    one = f"test_functions.py::test_direct[dash-[bracket]-{new}]"
    assert collected(where, one) == [one]
    old = resolve(KERNELS[0], fetch=False, progress=False).name
    two = "test_classes.py::TestPlainClass::test_two"
    assert collected(where, one, two) == [f"{two}[{old}]", one, f"{two}[{new}]"]
    by_keyword = collected(where, "-k", new)
    assert len(by_keyword) == len(plain_ids(where)) and all(n.endswith(f"{new}]") for n in by_keyword)


def test_an_item_without_a_kernel_is_an_error_and_never_runs_on_the_host(tmp_path):
    """An item another plugin adds after the harness routed the tests is refused, not run here."""
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "test_nothing.py").write_text("")
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "class Sneaky(pytest.Item):\n"
        "    def runtest(self):\n"
        "        open('ran-on-the-host', 'w').close()\n\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_collection_modifyitems(session, items):\n"
        "    items.append(Sneaky.from_parent(session, name='sneaky'))\n"
    )
    r = pytest_in(tmp_path, "--kernel", "6.1", "--offline", "--results-dir", str(tmp_path / "r"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "sneaky has no kernel" in r.stdout and "@pytest.mark.host" in r.stdout
    assert not (tmp_path / "ran-on-the-host").exists()
    run = records.load(tmp_path / "r" / "results.json")
    assert [(c.case, c.outcome) for c in run.cases] == [("::sneaky", "error")]


@pytest.mark.vm
def test_two_concurrent_runs_in_one_directory_keep_both_results(tmp_path):
    require_vm_host()
    where = project(tmp_path)
    runs: dict[str, subprocess.CompletedProcess] = {}
    tests = {"first": "test_functions.py::test_plain", "second": "test_classes.py::TestPlainClass::test_one"}

    def go(name):
        runs[name] = pytest_in(where, "--kernel", "6.1", tests[name])

    threads = [threading.Thread(target=go, args=(name,)) for name in tests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in runs.values():
        assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(p for p in (where / "results").glob("*/results.json") if p.parent.name != "latest")
    assert len(files) == 2, files
    got = {}
    for path in files:
        run = records.load(path)
        assert run.complete
        got[run.cases[0].case] = [c.outcome for c in run.cases]
        assert f"results: {path}" in "".join(r.stdout for r in runs.values())
    assert got == {tests["first"]: ["passed"], tests["second"]: ["passed"]}
    latest = where / "results" / "latest"
    assert latest.is_symlink() and (latest / "results.json").resolve() in [f.resolve() for f in files]


@pytest.mark.vm
def test_wheel_installed_harness_runs_a_separate_project(tmp_path):
    """Not editable, not this checkout: a wheel in a fresh virtualenv, used from another directory."""
    require_vm_host()
    repo = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"  # setuptools builds in the source tree: keep the checkout clean
    shutil.copytree(
        repo, source, ignore=shutil.ignore_patterns(".git", ".venv", "results", "build", "__pycache__")
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("bpf_vm_harness-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stderr
    where = project(tmp_path)
    located = subprocess.run(
        [python, "-c", "import harness; print(harness.__file__)"],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert located.startswith(str(venv)), located
    r = pytest_in(
        where,
        "--kernel",
        "6.1",
        "--doctest-modules",
        "--outside-flag",
        "given",
        "--results-dir",
        str(tmp_path / "r"),
        "kernelcheck.py",
        "test_unittest_style.py",
        "test_functions.py::test_own_option_arrives",
        python=python,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    assert "5 passed" in r.stdout
    run = records.load(tmp_path / "r" / "results.json")
    assert {c.outcome for c in run.cases} == {"passed"} and len(run.cases) == 5
    console = next((tmp_path / "r" / "vm-logs").glob("*.console.log")).read_text()
    header = "\n".join(console.splitlines()[:2])  # vng's command, then the guest's
    assert f"{python} -B -P -m harness.guest" in header  # the guest ran the installed harness


def test_a_path_option_that_would_move_the_rootdir_is_refused(tmp_path):
    """pytest chooses its rootdir before it loads plugins: `--results-dir DIR` (two words) makes DIR a
    test path there. Where that moved the rootdir (the project's ids and ini file lost), the run stops."""
    where = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    two_words = pytest_in(where, "--collect-only", "-q", "--results-dir", str(elsewhere))
    assert two_words.returncode == 4, two_words.stdout + two_words.stderr
    assert f"write --results-dir={elsewhere} (with '=')" in two_words.stderr
    one_word = pytest_in(where, "--collect-only", "-q", f"--results-dir={elsewhere}")
    assert one_word.returncode == 0, one_word.stdout + one_word.stderr
    assert "test_functions.py::test_plain" in one_word.stdout.splitlines()
