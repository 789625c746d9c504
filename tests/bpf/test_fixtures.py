"""harness.bpf.fixtures in a child pytest run: the leak guard catches leaks, mounts and directories are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest

@pytest.fixture(autouse=True)
def _guard(bpf_leak_guard):
    yield
"""

CASES = """
import json, os
from pathlib import Path
from harness import libbpf as L

LEAKED = []

def test_leaks_a_map():
    LEAKED.append(L.map_create(L.MapType.HASH, "leaky", 4, 4, 1))

def test_clean(bpffs, cgroup2):
    assert os.listdir(bpffs) == []
    assert (cgroup2 / "cgroup.procs").read_text() == ""
    fd = L.map_create(L.MapType.HASH, "pinned", 4, 4, 1)
    L.obj_pin(fd, bpffs / "m")
    os.close(fd)
    Path(os.environ["RECORD"]).write_text(json.dumps({"bpffs": str(bpffs), "cgroup": str(cgroup2)}))
"""


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_leak_guard_and_cleanup(tmp_path, bpf_privileges):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_child.py").write_text(textwrap.dedent(CASES))
    record = tmp_path / "record.json"
    mounts_before = _mounts()
    env = dict(
        os.environ,
        RECORD=str(record),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-B",
            "-m",
            "pytest",
            "-p",
            "harness.bpf.fixtures",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "2 passed, 1 error" in out, out  # the leaky test passes, its teardown errors
    assert "test left BPF objects alive" in out and "'leaky'" in out, out
    paths = json.loads(record.read_text())
    assert not os.path.exists(paths["bpffs"])
    assert not os.path.exists(paths["cgroup"])
    assert _mounts().count(" - bpf ") <= mounts_before.count(" - bpf ")
    assert _mounts().count(" - cgroup2 ") <= mounts_before.count(" - cgroup2 ")
