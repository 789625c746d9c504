"""Helpers for the harness's own tests that boot VMs: run pytest in a subprocess, read results."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.vm import preflight

ROOT = Path(__file__).resolve().parent.parent


def require_vm_host() -> None:
    absent = preflight.missing()
    if absent:
        pytest.skip(f"cannot boot VMs on this host: {preflight.message(absent)}")


def run_pytest(args: list[str], tmp_path: Path, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """pytest in a subprocess from the repository root, results under tmp_path."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-rs",
        "--results-dir",
        str(tmp_path / "results"),
        "--junitxml",
        str(tmp_path / "junit.xml"),
        *args,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)


def junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """test id ('file.py::test[6.1.192-3]') -> (passed|failed|error|skipped, message)."""
    return {nodeid: (outcome, message) for nodeid, _, outcome, message in junit_cases(path)}


def junit_cases(path: Path) -> list[tuple[str, str | None, str, str]]:
    """(test id, kernel property, outcome, message) for every test case of a JUnit file."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname").replace(".", "/") + ".py"
        nodeid = f"{module}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (el.get("message") or "") + "\n" + (el.text or "")
                break
        kernel = next((p.get("value") for p in case.iter("property") if p.get("name") == "kernel"), None)
        out.append((nodeid, kernel, outcome, message))
    return out


def vm_processes(results_dir: Path) -> list[int]:
    """Processes started for VMs whose logs go under results_dir (vng, QEMU)."""
    marker = f"HARNESS_VM_LOG={results_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(marker) for var in environ.split(b"\0")):
            pids.append(int(entry.name))
    return pids
