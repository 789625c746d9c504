"""Every project layout pytest accepts runs the same under --kernel as on the host (issue 19).

Each layout in tests/outside/layouts is a tiny project of its own, copied elsewhere and run twice
from the directory and with the arguments its entry names: on the host without the harness, then
under ``--kernel``. The second run must report the same tests (the same junit class names and
names, the kernel appended to each name) with the same outcomes, and warn about nothing the first
does not, in its output or in the guest's console. The whole matrix runs twice: through the fake
vng (tests/vm/fakevng.py: the real agent, no kernel) in seconds, and on a real 6.1, where one warm
VM (``--reuse-vm`` with a state directory of this module's own) serves every layout after one boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import ids
from harness.vm import warm
from tests.vm.test_loop_fake import FAKE, RELEASE, _fake_host, bzimage_header  # noqa: F401 - a fixture
from tests.vmtools import require_vm_host, vm_processes

pytestmark = pytest.mark.slow  # pytest sessions through the fake vng: root, seconds a test

LAYOUTS = Path(__file__).resolve().parents[1] / "outside" / "layouts"

# id -> (layout, directory pytest runs in, its arguments, how many tests the host runs)
RUNS = {
    "rootdir-below": ("rootdir_below", ".", ["--rootdir=tests", "tests/unit", "-W", "error"], 2),
    "rootdir-above": ("rootdir_above", "sub", ["--rootdir=..", "--confcutdir=."], 1),
    "files-outside-the-rootdir": ("rootdir_above", ".", ["--rootdir=sub", "sub", "other"], 2),
    "ini-in-parent": ("ini_parent", "pkg/tests", [], 1),
    "testpaths": ("testpaths", ".", [], 1),
    "src-pythonpath-p": ("src_layout", ".", ["tests", "-p", "lay_src.plug"], 2),
    "plugins-nested-W-error": ("plugins_nested", ".", ["tests/unit", "-W", "error"], 2),
    "importlib-mode": ("importlib_mode", ".", [], 2),
    "rootdir-through-symlink": ("symlink", ".", ["--rootdir=alias", "alias"], 1),
    "directory": ("select", ".", ["."], 5),
    "files": ("select", ".", ["test_sel_b.py", "test_sel_a.py"], 5),
    "keyword": ("select", ".", ["-k", "one or b or 2"], 3),
    "deselect": ("select", ".", ["--deselect", "test_sel_a.py::test_two", "--deselect", "test_sel_b.py"], 3),
    "node-ids": ("select", ".", ["test_sel_a.py::test_three[2]", "test_sel_a.py::test_one"], 2),
}


def copy(tmp_path: Path, layout: str, release: str) -> Path:
    dest = tmp_path / layout
    shutil.copytree(LAYOUTS / layout, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "expected-release.txt").write_text(release + "\n")
    return dest


def pytest_in(where: Path, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=1200, env=env)


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(class name, test name) -> passed|failed|error|skipped, from a JUnit file."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tag = next((el.tag for el in case if el.tag in ("failure", "error", "skipped")), "passed")
        out[(case.get("classname", ""), case.get("name", ""))] = {"failure": "failed"}.get(tag, tag)
    return out


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Warning" in line or "warnings summary" in line]


def same_as_on_the_host(
    tmp_path: Path,
    run: str,
    kernel_args: list[str],
    kernel: str,
    release: str,
    env,
    results: Path,
    consoles: Path,
):
    """Run the layout on the host, then under --kernel; compare ids, outcomes and warnings."""
    layout, cwd, args, count = RUNS[run]
    host_dir = copy(tmp_path / "host", layout, os.uname().release)
    host = pytest_in(
        host_dir / cwd, [*args, "-p", "no:bpf_vm_harness", f"--junitxml={tmp_path / 'host.xml'}"]
    )
    assert host.returncode == 0, host.stdout + host.stderr
    expected = outcomes(tmp_path / "host.xml")
    assert len(expected) == count and set(expected.values()) == {"passed"}, expected

    vm_dir = copy(tmp_path / "vm", layout, release)
    r = pytest_in(
        vm_dir / cwd,
        [*kernel_args, f"--results-dir={results}", f"--junitxml={tmp_path / 'vm.xml'}", *args],
        env=env,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    got = outcomes(tmp_path / "vm.xml")
    # each test once, under its host id with the kernel appended, with the host's outcome
    assert got == {(cls, ids.with_kernel(name, kernel)): outcome for (cls, name), outcome in expected.items()}
    logs = sorted(consoles.rglob("*.console.log"))
    assert logs, f"no console log under {consoles}"
    console = "".join(p.read_text(errors="replace") for p in logs)
    assert warnings_in(host.stdout) == warnings_in(r.stdout) == [], r.stdout
    assert warnings_in(console) == [], console[-4000:]
    return r


@pytest.mark.usefixtures("_fake_host")
@pytest.mark.parametrize("run", list(RUNS))
def test_a_layout_runs_in_the_fake_guest_as_on_the_host(run, tmp_path):
    image = bzimage_header(tmp_path / "bzImage", RELEASE)
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    # the fake runs the guest on this host: the tests see this host's release
    args = [f"--kernel={image}"]
    results = tmp_path / "results"
    same_as_on_the_host(tmp_path, run, args, RELEASE, os.uname().release, env, results, results / "vm-logs")


@pytest.fixture(scope="module")
def one_warm_vm():
    """A state directory of this module's own: the first real run boots, the others attach."""
    require_vm_host()
    state = Path(tempfile.mkdtemp(prefix="hvm-"))  # short: the keeper's socket path fits in 108 bytes
    yield {**os.environ, warm.STATE_ENV: str(state)}, state
    stop = [sys.executable, "-m", "harness", "vm", "stop", "--all"]
    subprocess.run(stop, env={**os.environ, warm.STATE_ENV: str(state)}, capture_output=True, timeout=180)
    assert not vm_processes(state), vm_processes(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.vm
@pytest.mark.parametrize("run", list(RUNS))
def test_a_layout_runs_in_a_real_guest_as_on_the_host(run, tmp_path, one_warm_vm):
    from harness.kernels import resolve  # noqa: PLC0415

    env, state = one_warm_vm
    kernel = resolve("6.1", fetch=False, progress=False)
    args = ["--kernel=6.1", "--offline", "--reuse-vm"]
    # the warm VM's console (one log per boot) lives in its state directory, beside the results
    same_as_on_the_host(tmp_path, run, args, kernel.name, kernel.release, env, state / "results" / run, state)


@pytest.mark.usefixtures("_fake_host")
def test_a_case_the_guest_does_not_collect_names_both_ids_and_rootdirs(tmp_path):
    """A conftest that collects differently in the guest: the error says what each side saw."""
    where = copy(tmp_path, "select", os.uname().release)
    (where / "test_sel_a.py").write_text(
        (where / "test_sel_a.py").read_text()
        + "\n\nif os.environ.get('FAKEVNG_PID'):  # in the fake guest only\n    test_uno, test_one = test_one, None\n"
    )
    image = bzimage_header(tmp_path / "bzImage", RELEASE)
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    r = pytest_in(where, [f"--kernel={image}", f"--results-dir={tmp_path / 'r'}", "test_sel_a.py"], env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "4 passed" not in r.stdout and "1 failed, 3 passed" in r.stdout, r.stdout
    assert (
        f"test_sel_a.py::test_one was collected on the host (rootdir {where}) but not inside the "
        f"{RELEASE} guest (rootdir {where}), so it cannot run there; the nearest id it collected "
        "is test_sel_a.py::test_uno." in " ".join(r.stdout.split())
    ), r.stdout
