"""harness.bpf.programs: the bpf_object fixture in a user's project (host run), and bcc from dist-packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bpf import fixtures, programs

REPO = Path(__file__).resolve().parents[2]

HELLO = (REPO / "cases" / "c" / "hello.bpf.c").read_text()
HELLO_H = (REPO / "cases" / "c" / "hello.h").read_text()
USER_TEST = """\
import struct

def test_config_map(bpf_object):
    obj = bpf_object("c/hello.bpf.c")
    assert obj.map("config").info().value_size == 12

def test_broken(bpf_object):
    bpf_object("c/broken.bpf.c")
"""


def run_user_project(tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "hello.bpf.c").write_text(HELLO)
    (tmp_path / "c" / "hello.h").write_text(HELLO_H)
    (tmp_path / "c" / "broken.bpf.c").write_text('#include "vmlinux.h"\nint x = y;\n')
    (tmp_path / "test_user.py").write_text(USER_TEST)
    env = dict(os.environ, HARNESS_BPF_OBJECTS=str(tmp_path / "objects"), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_users_test_loads_its_source_and_sees_clangs_error(tmp_path):
    if fixtures.unavailable_reason():
        pytest.skip(fixtures.unavailable_reason())
    done = run_user_project(tmp_path)
    out = done.stdout + done.stderr
    assert "1 failed, 1 passed" in out, out
    assert "broken.bpf.c:2:9: error: use of undeclared identifier 'y'" in out
    assert list((tmp_path / "objects" / "objects").glob("*.bpf.o"))


def test_bcc_imports_from_dist_packages_alone():
    if not (programs.DIST_PACKAGES[0] / "bcc" / "__init__.py").is_file():
        pytest.skip("python3-bpfcc is not installed")
    code = (
        "import sys; from harness.bpf import programs; m = programs.import_bcc(); "
        "print(m.__file__); print(any('dist-packages' in p for p in sys.path))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(programs.DIST_PACKAGES[0] / "bcc" / "__init__.py"), "False"]


USER_BCC_TEST = """\
from bcc import BPF

def test_bcc_is_debians():
    import bcc
    assert bcc.__file__ == {init!r}
    assert BPF.__module__ == "bcc"
"""


def test_a_users_own_from_bcc_import_works_where_the_interpreter_has_no_bcc(tmp_path):
    """This pytest's interpreter (a virtualenv on another Python than Debian's) cannot import bcc
    by itself; with the plugin loaded, a test's own `from bcc import BPF` finds Debian's."""
    init = programs.DIST_PACKAGES[0] / "bcc" / "__init__.py"
    if not init.is_file():
        pytest.skip("python3-bpfcc is not installed")
    alone = subprocess.run([sys.executable, "-c", "import bcc"], capture_output=True, text=True, check=False)
    if alone.returncode == 0:
        pytest.skip(f"{sys.executable} imports bcc by itself: nothing for the plugin to do")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_user.py").write_text(USER_BCC_TEST.format(init=str(init)))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    with_plugin = run()
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert "1 passed" in with_plugin.stdout
    without = run("-p", "no:bpf_vm_harness")
    assert without.returncode == 2, without.stdout + without.stderr
    assert "No module named 'bcc'" in without.stdout


def test_headers_reason_names_the_missing_build_link():
    reason = programs.kernel_headers_reason("0.0.0-none")
    assert "/lib/modules/0.0.0-none/build" in reason


CONFTEST = """\
def pytest_collection_finish(session):
    config = session.config
    extra = [a for args in config.hook.pytest_bpf_guest_args(config=config) for a in args]
    (config.rootpath / "guest_args.txt").write_text("\\n".join(extra))
"""


def test_guests_are_told_where_the_host_put_the_objects(tmp_path):
    """vng passes no environment, so the cache root travels as a guest argument."""
    from harness.kernels.cache import default_root  # noqa: PLC0415

    if not list(default_root().glob("6.1.*/meta.json")):
        pytest.skip("no 6.1 kernel in the cache (ci/setup.sh fetches it)")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    objects = tmp_path / "objects"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HARNESS_BPF_OBJECTS=str(objects))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--kernel",
            "6.1",
            "--offline",
            "--collect-only",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    args = (tmp_path / "guest_args.txt").read_text().splitlines()
    assert f"--bpf-objects={objects}" in args
