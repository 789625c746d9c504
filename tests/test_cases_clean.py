"""Run the BPF cases on the host kernel and check they pass and leave no program, map or link behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import libbpf as L

REPO = Path(__file__).resolve().parent.parent


def _ids() -> dict[str, set[int]]:
    return {"prog": L.prog_ids(), "map": L.map_ids(), "link": L.link_ids()}


def test_cases_pass_and_leave_nothing(bpf_privileges):
    before = _ids()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # Fixtures and gates come from the harness plugin (entry point), as in any run.
    done = subprocess.run(
        [sys.executable, "-B", "-m", "pytest", "cases/", "-p", "no:cacheprovider", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 30, out[-3000:]
    deadline = time.monotonic() + 5
    while True:
        left = {kind: ids - before[kind] for kind, ids in _ids().items()}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == {"prog": set(), "map": set(), "link": set()}
