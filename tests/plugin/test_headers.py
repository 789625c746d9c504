"""harness.plugin.headers: kernel headers for every test that needs bcc, however it asks for it.

tests/outside_bcc is a project written as bcc's own tests are (unittest, ``from bcc import BPF``,
no harness fixture); it runs here under --kernel in a fresh copy of the kernel cache, so the
headers are fetched by the run itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from harness.kernels import KernelError, aptsources, resolve
from harness.kernels import headers as kernel_headers
from harness.kernels.cache import default_root
from harness.plugin import headers
from harness.report import records
from tests.vmtools import require_vm_host

OUTSIDE_BCC = Path(__file__).resolve().parents[1] / "outside_bcc"
# two kernels whose headers packages are laid out differently (a source link; none, trixie's)
KERNELS = ["6.1", "7.3"]


# -- which tests need bcc (no boot) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "imports"),
    [
        ("from bcc import BPF\n", True),
        ("import bcc\n", True),
        ("import os, bcc.table as t\n", True),
        ("from bcc.utils import printb\n", True),
        (
            "import unittest\n\nclass T(unittest.TestCase):\n    def setUp(self):\n        from bcc import BPF\n",
            True,
        ),
        ("try:\n    import bcc\nexcept ImportError:\n    bcc = None\n", True),
        ("import pytest\nbcc = pytest.importorskip('bcc')\n", True),
        ("import importlib\nb = importlib.import_module('bcc')\n", True),
        ("import bccx\nfrom mybcc import BPF\n", False),
        ("from .bcc import BPF\n", False),  # the project's own module named bcc
        ("# from bcc import BPF\nTEXT = 'import bcc'\n", False),
        ("import os\nos.getenv('bcc')\n", False),
        ("def broken(:\n    import bcc\n", False),  # does not collect anywhere
    ],
)
def test_a_file_imports_bcc_when_a_statement_imports_it(tmp_path, source, imports):
    path = tmp_path / "test_x.py"
    path.write_text(source)
    assert headers.imports_bcc(path) is imports


def test_only_python_files_are_read(tmp_path):
    path = tmp_path / "checks.kcheck"
    path.write_text("import bcc\n")
    assert headers.imports_bcc(path) is False
    assert headers.imports_bcc(tmp_path / "missing.py") is False


def test_the_tests_that_need_bcc_are_those_of_its_files_and_of_the_fixture(tmp_path):
    (tmp_path / "test_bcc.py").write_text("from bcc import BPF\n")
    (tmp_path / "test_plain.py").write_text("import os\n")
    (tmp_path / "doc.txt").write_text(">>> import bcc\n")

    def test(nodeid, fixtures=()):
        return SimpleNamespace(
            nodeid=nodeid, path=tmp_path / nodeid.split("::")[0], fixturenames=list(fixtures)
        )

    cases = [
        test("test_bcc.py::T::test_a"),
        test("test_bcc.py::test_b"),
        test("test_plain.py::test_fixture", ["bpffs", "bcc"]),
        test("test_plain.py::test_plain", ["bpffs"]),
        test("doc.txt::doc.txt"),
    ]
    # under --kernel the items are KernelItems: the test is their case
    items = [SimpleNamespace(case=case, kernel=k) for k in ("6.1.192", "7.3.4") for case in cases]
    expected = {"test_bcc.py::T::test_a", "test_bcc.py::test_b", "test_plain.py::test_fixture"}
    assert headers.bcc_cases(items) == expected
    assert headers.bcc_cases(cases) == expected


@pytest.mark.parametrize(
    ("mode", "needs", "imported", "fetch"),
    [
        ("auto", {"t.py::test"}, True, True),
        ("auto", {"t.py::test"}, False, True),
        ("auto", set(), True, True),  # only a helper or a conftest imported bcc
        ("auto", set(), False, False),
        ("always", set(), False, True),
        ("never", {"t.py::test"}, True, False),
    ],
)
def test_kernel_headers_option_decides_the_fetch(mode, needs, imported, fetch):
    assert headers.wanted(mode, needs, imported) is fetch


def test_kernel_headers_option_takes_auto_always_or_never(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    bad = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--kernel-headers", "sometimes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 4, bad.stdout + bad.stderr
    assert "invalid choice: 'sometimes' (choose from 'auto', 'always', 'never')" in bad.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--kernel-headers={auto,always,never}" in shown.stdout


# -- a kernel without headers: its bcc tests fail, saying what to do (no boot) -------------------


def fresh_cache(dest: Path, kernels: list) -> Path:
    """A kernel cache holding these cached kernels as they were fetched: no headers, no build links,
    each under its exact name (the user's cache may hold one under a name an older harness gave it).

    Files are hard links (nothing in an entry is written in place: a fetch writes new files and
    renames them), so the copy is quick and the user's cache is never changed through it."""
    source = default_root()

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:  # another file system
            shutil.copy2(src, dst)

    def without_headers(directory, entries):
        d = Path(directory)
        if d.parent == source:  # <entry>/
            return [e for e in entries if e == kernel_headers.HEADERS_DIR or e.startswith(".tmp-")]
        if d.parent.name == "modules":  # <entry>/lib/modules/<release>/
            return [e for e in entries if e in ("build", "source")]
        return []

    dest.mkdir()
    for kernel in kernels:
        entry = kernel.image.parent.parent
        shutil.copytree(entry, dest / kernel.name, symlinks=True, ignore=without_headers, copy_function=link)
    if (source / ".index").is_dir():  # archive indexes, content-addressed: saves downloads
        shutil.copytree(source / ".index", dest / ".index", copy_function=link)
    return dest


def cached(spec: str):
    try:
        return resolve(spec, fetch=False, progress=False)
    except KernelError as exc:
        pytest.skip(f"kernel {spec} is not in the cache (ci/setup.sh fetches it): {exc}")


def in_cache(kernel, cache: Path):
    """The same kernel in another cache directory."""
    entry = kernel.image.parent.parent
    return dataclasses.replace(kernel, image=cache / kernel.name / kernel.image.relative_to(entry))


def bcc_project(tmp_path: Path) -> Path:
    """The outside project, plus a test that asks for bcc through the harness's fixture only."""
    where = tmp_path / "project"
    shutil.copytree(OUTSIDE_BCC, where, ignore=shutil.ignore_patterns("__pycache__", "results"))
    (where / "test_fixture.py").write_text("def test_version(bcc):\n    assert bcc.__version__\n")
    return where


def pytest_in(where: Path, cache: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HARNESS_CACHE_DIR": str(cache)},
    )


def failures(results: Path) -> set[str]:
    run = records.load(results)
    assert run.complete
    return {c.case for c in run.cases if c.outcome == "failed"}


def sections(stdout: str) -> list[str]:
    """The texts of the FAILURES section, one a failed test (results.json keeps an excerpt)."""
    failures = stdout.partition(" FAILURES ")[2].partition("\n")[2].partition("\n=====")[0]
    return re.split(r"^_{3,} .+ _{3,}$", failures, flags=re.MULTILINE)[1:]


def test_without_cached_headers_offline_the_bcc_tests_fail_without_a_boot(tmp_path):
    kernel = cached("6.1")
    cache = fresh_cache(tmp_path / "cache", [kernel])
    where = bcc_project(tmp_path)
    r = pytest_in(where, cache, "--kernel", kernel.name, "--offline", f"--results-dir={tmp_path / 'r'}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 failed" in r.stdout, r.stdout
    failed = failures(tmp_path / "r" / "results.json")
    assert failed == {
        "test_exec_count.py::ExecCountTest::test_each_exec_of_a_child_is_counted_once",
        "test_exec_count.py::ExecCountTest::test_a_child_that_execs_again_is_counted_twice",
        "test_fixture.py::test_version",
    }
    said = sections(r.stdout)
    assert len(said) == 3
    for text in said:
        assert f"no kernel headers for bcc on {kernel.name} (Debian's linux-headers-{kernel.release}" in text
        assert "not in the cache, and --offline forbids fetching them" in text
        assert "run once without --offline" in text and "--kernel-headers never" in text
    assert not list((tmp_path / "r").glob("vm-logs/*")), "a VM booted for tests that cannot run in it"
    assert kernel_headers.installed(in_cache(kernel, cache)) is None


def test_headers_the_archive_lacks_fail_the_bcc_tests_with_the_package_name(tmp_path):
    """The cache entry says its kernel came from bullseye-security, whose real (signed) index
    has no headers of a bookworm kernel: the archive lacks the package, as it does once it drops one."""
    kernel = cached("6.1")
    try:
        urls = aptsources.for_suite("bullseye-security", aptsources.bases())
        reached = [requests.head(f"{u}/dists/bullseye-security/InRelease", timeout=30).ok for u in urls]
    except (KernelError, requests.RequestException) as exc:
        pytest.skip(f"needs the Debian archive's bullseye-security suite: {exc}")
    if not any(reached):
        pytest.skip(f"no configured Debian archive serves bullseye-security ({', '.join(urls)})")
    cache = fresh_cache(tmp_path / "cache", [kernel])
    meta_path = cache / kernel.name / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.unlink()  # a hard link to the user's cache: replace it, never write through it
    meta_path.write_text(json.dumps({**meta, "suite": "bullseye-security"}))
    where = bcc_project(tmp_path)
    r = pytest_in(
        where, cache, "--kernel", kernel.name, f"--results-dir={tmp_path / 'r'}", "test_exec_count.py"
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed" in r.stdout, r.stdout
    failed = failures(tmp_path / "r" / "results.json")
    assert len(failed) == 2
    said = sections(r.stdout)
    assert len(said) == 2
    for text in said:
        assert f"linux-headers-{kernel.release} " in text and "is not in bullseye-security" in text
        assert "choose another kernel" in text and "--kernel-headers never" in text
    assert not list((tmp_path / "r").glob("vm-logs/*"))
    assert json.loads((kernel.image.parent.parent / "meta.json").read_text())["suite"] == meta["suite"]


# -- bcc as written, on two real kernels -------------------------------------------------------


def guest_stderr(junit: Path) -> str:
    return "".join(el.text or "" for el in ET.parse(junit).getroot().iter("system-err"))


def headers_state(kernel) -> tuple:
    """What a run could change of the user's cache: the headers and the build and source links."""
    mods = kernel.image.parent.parent / "lib" / "modules" / kernel.release
    links = tuple(os.readlink(mods / n) if (mods / n).is_symlink() else None for n in ("build", "source"))
    return kernel_headers.installed(kernel), links


@pytest.mark.vm
def test_a_unittest_that_imports_bcc_itself_runs_on_two_kernels_from_fresh_headers(tmp_path):
    require_vm_host()
    kernels = [cached(spec) for spec in KERNELS]
    before = [headers_state(k) for k in kernels]
    cache = fresh_cache(tmp_path / "cache", kernels)
    where = tmp_path / "project"
    shutil.copytree(OUTSIDE_BCC, where, ignore=shutil.ignore_patterns("__pycache__", "results"))
    r = pytest_in(
        where,
        cache,
        *[a for k in kernels for a in ("--kernel", k.name)],
        f"--results-dir={tmp_path / 'r'}",
        f"--junitxml={tmp_path / 'junit.xml'}",
        "-o",
        "junit_logging=all",
        timeout=2400,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    assert "4 passed" in r.stdout, r.stdout[-3000:]
    run = records.load(tmp_path / "r" / "results.json")
    assert {(c.kernel, c.outcome) for c in run.cases} == {(k.name, "passed") for k in kernels}
    assert len(run.cases) == 4
    said = guest_stderr(tmp_path / "junit.xml")
    for kernel in kernels:
        assert f"fetching linux-headers-{kernel.release} for bcc on {kernel.name}" in r.stdout
        assert f"OUTSIDE-BCC compiling on {kernel.release}" in said  # bcc compiled in that guest
        # the run's own cache got the headers, linked where the guest's bcc looks
        got = kernel_headers.installed(in_cache(kernel, cache))
        assert got is not None and got.root.is_relative_to(cache)
        assert any(
            deb.startswith(f"linux-headers-{kernel.release}_")
            for deb in json.loads((got.root / "meta.json").read_text())["debs"]
        )
        mods = cache / kernel.name / "lib" / "modules" / kernel.release
        assert (mods / "build").resolve() == got.build.resolve()
        assert (mods / "source" / "include" / "linux" / "kconfig.h").is_file()
    assert [headers_state(k) for k in kernels] == before  # the user's cache is as it was
