"""The guest's collection: only the files of the cases, and the directories on the way to them.

Through the fake vng (tests/vm/fakevng.py): the guest agent runs on this host, no kernel boots.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.vm.test_loop_fake import FAKE, RELEASE, _fake_host, bzimage_header  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("_fake_host")

CONFTEST = """
import os, sys

def pytest_collect_file(file_path):
    if os.environ.get("HARNESS_RESULTS_DIR"):  # the guest: its console is standard error
        print(f"offered: {os.path.relpath(file_path, os.path.dirname(__file__))}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("args", "passed", "files"),
    [
        (["a/test_one.py", "a/deeper/test_three.py"], 2, ["a/deeper/test_three.py", "a/test_one.py"]),
        # the guest starts from the host's own arguments (a directory), and still opens only the
        # file of the test -k kept
        (["a", "-k", "three"], 1, ["a/deeper/test_three.py"]),
    ],
)
def test_the_guest_offers_only_the_cases_files_to_collectors(tmp_path, args, passed, files):
    project = tmp_path / "project"
    for path in ("a/test_one.py", "a/test_sibling.py", "b/test_other.py", "a/deeper/test_three.py"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("def test_x():\n    pass\n")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "pytest.ini").write_text("[pytest]\n")
    image = bzimage_header(tmp_path / "bzImage", RELEASE)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--kernel", str(image)]
    cmd += ["--results-dir", str(results), *args]
    env = {**os.environ, "HARNESS_VNG": str(FAKE)}
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"{passed} passed" in proc.stdout, proc.stdout + proc.stderr
    (console,) = (results / "vm-logs").glob("*.console.log")
    offered = sorted(
        line.split()[1] for line in console.read_text().splitlines() if line.startswith("offered: ")
    )
    assert offered == files, console.read_text()
