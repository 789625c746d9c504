"""harness.vm.pyzip: the zips the guest imports from, instead of compiling over 9p."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import zipfile

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


@pytest.mark.slow  # builds the 40 MB module zip
def test_the_guest_agent_imports_from_the_zips_and_keeps_the_tests_directory_first(tmp_path):
    """What the guest command does (-B -P, PYTHONPATH the zips), in a directory that has a
    harness/ of its own, as a checkout of the harness does."""
    zips = [pyzip.harness_zip(tmp_path / "cache"), pyzip.ensure(tmp_path / "cache")]
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "__init__.py").write_text("raise ImportError('the checkout, not the zip')\n")
    (tmp_path / "mine.py").write_text("")
    probe = (
        "import sys, harness.guest.agent as g; sys.path.insert(0, __import__('os').getcwd()); "
        "import mine; print(g.__file__, g.__loader__.__class__.__name__, mine.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, zips))}
    out = subprocess.run(
        [sys.executable, "-B", "-P", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    guest_file, loader, mine = out.stdout.split()
    assert guest_file.startswith(str(zips[0])) and loader == "zipimporter"
    assert mine == str(tmp_path / "mine.py")


def test_building_a_zip_removes_the_ones_unused_for_a_day(tmp_path):
    old, recent = tmp_path / "python-old.zip", tmp_path / "harness-recent.zip"
    for path in (old, recent):
        path.write_bytes(b"")
    day_ago = time.time() - pyzip.UNUSED_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    target = pyzip.harness_zip(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == sorted([target.name, recent.name])
    os.utime(target, (day_ago, day_ago))
    assert pyzip.harness_zip(tmp_path) == target and time.time() - target.stat().st_mtime < 60  # used: kept


@pytest.mark.slow  # builds the 40 MB module zip
def test_the_packages_of_pytest_plugins_stay_out_of_the_module_zip(tmp_path):
    """pytest rewrites every module of a plugin's distribution, which it can do only for files:
    from the zip, a conftest naming one in pytest_plugins would get an 'already imported' warning."""
    plugins = pyzip.plugin_packages()
    assert "xdist" in plugins  # pytest-xdist, a dependency of the harness, has a pytest11 entry point
    assert "pluggy" not in plugins
    tops = {name.split("/")[0] for name in zipfile.ZipFile(pyzip.ensure(tmp_path)).namelist()}
    assert "pluggy" in tops and "_pytest" in tops
    assert not tops & plugins, tops & plugins
