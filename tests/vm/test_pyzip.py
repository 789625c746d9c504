"""harness.vm.pyzip: the byte-compiled modules the guest imports from, instead of compiling over 9p."""

from __future__ import annotations

import importlib.util
import marshal
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from harness import parts
from harness.vm import pyzip
from tests.vmtools import ROOT


def test_the_harness_zip_holds_every_package_of_the_distribution(tmp_path):
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert list(parts.PACKAGES) == declared
    target = pyzip.harness_zip(tmp_path)
    names = set(zipfile.ZipFile(target).namelist())
    for member in ("harness/guest/agent.py", "harness/guest/agent.pyc", "harness/kernels/catalog.toml"):
        assert member in names
    assert pyzip.harness_zip(tmp_path) == target  # unchanged sources: the same zip, not rebuilt


@pytest.mark.slow  # builds the 40 MB module tree
def test_the_guest_agent_imports_from_the_zip_and_the_tree_and_keeps_the_tests_directory_first(tmp_path):
    """What the guest command does (-B -P, PYTHONPATH the harness zip and the module tree), in a
    directory that has a harness/ of its own, as a checkout of the harness does."""
    paths = [pyzip.harness_zip(tmp_path / "cache"), pyzip.ensure(tmp_path / "cache")]
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "__init__.py").write_text("raise ImportError('the checkout, not the zip')\n")
    (tmp_path / "mine.py").write_text("")
    probe = (
        "import sys, harness.guest.agent as g, _pytest.main as m; sys.path.insert(0, __import__('os').getcwd()); "
        "import mine; print(g.__file__, g.__loader__.__class__.__name__, m.__file__, m.__cached__, mine.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    out = subprocess.run(
        [sys.executable, "-B", "-P", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    guest_file, loader, pytest_file, pytest_cached, mine = out.stdout.split()
    assert guest_file.startswith(str(paths[0])) and loader == "zipimporter"
    assert pytest_file == str(paths[1] / "_pytest" / "main.py")
    assert Path(pytest_cached).parent == paths[1] / "_pytest" / "__pycache__"
    assert mine == str(tmp_path / "mine.py")


@pytest.mark.slow  # builds the 40 MB module tree
def test_the_tree_byte_code_is_its_sources_compiled_and_taken_unchecked(tmp_path):
    """PEP 552's unchecked hash: the import system reads neither the source nor its mtime, which
    a tree named by its content does not need; the hash still says which source it is."""
    tree = pyzip.ensure(tmp_path)
    source = (tree / "_pytest" / "main.py").read_bytes()
    pyc = (tree / "_pytest" / "__pycache__" / f"main.{sys.implementation.cache_tag}.pyc").read_bytes()
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, check_source off
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == str(tree / "_pytest" / "main.py") and "wrap_session" in code.co_names


def test_a_build_that_fails_leaves_neither_the_tree_nor_its_pieces(tmp_path):
    good = tmp_path / "src" / "good.py"
    good.parent.mkdir()
    good.write_text("x = 1\n")
    members = [(good, "good.py"), (tmp_path / "src" / "gone.py", "gone.py")]
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(FileNotFoundError):
        pyzip._built(cache / "python-k", pyzip._write_tree, members)
    assert sorted(p.name for p in cache.iterdir()) == [".pyzip.lock"]
    assert pyzip._built(cache / "python-k", pyzip._write_tree, members[:1]) == cache / "python-k"
    assert (cache / "python-k" / "good.py").read_text() == "x = 1\n"


def test_building_removes_what_went_unused_for_a_day(tmp_path):
    """Old zips and trees, and the leftovers of a writer that died; what a VM used lately stays."""
    old, recent, old_tree, dead = (
        tmp_path / "harness-old.zip",
        tmp_path / "harness-recent.zip",
        tmp_path / "python-old",
        tmp_path / ".python-new.123.tmp",
    )
    for path in (old, recent):
        path.write_bytes(b"")
    for path in (old_tree, dead):
        (path / "pkg").mkdir(parents=True)
        (path / "pkg" / "m.py").write_text("")
    day_ago = time.time() - pyzip.UNUSED_SECONDS - 60
    for path in (old, old_tree, dead):
        os.utime(path, (day_ago, day_ago))
    target = pyzip.harness_zip(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".pyzip.lock", target.name, recent.name])
    os.utime(target, (day_ago, day_ago))
    assert pyzip.harness_zip(tmp_path) == target and time.time() - target.stat().st_mtime < 60  # used: kept


@pytest.mark.slow  # builds the 40 MB module tree
def test_the_packages_of_pytest_plugins_stay_out_of_the_module_tree(tmp_path):
    """pytest rewrites every module of a plugin's distribution: the guest leaves them in their own
    files, where the host's pytest finds and rewrites them."""
    plugins = pyzip.plugin_packages()
    assert "xdist" in plugins  # pytest-xdist, a dependency of the harness, has a pytest11 entry point
    assert "pluggy" not in plugins
    tops = {p.name for p in pyzip.ensure(tmp_path).iterdir()}
    assert "pluggy" in tops and "_pytest" in tops
    assert not (tops - {"__pycache__"}) & plugins, tops & plugins
