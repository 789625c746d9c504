"""kernel-matrix.yml's plan and merge jobs run locally on saved real runs (tests/data/runs): step summary, annotations, each policy's verdict, and the HTML page in Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import matrix, records
from tests.ci.runner import LocalRun, Workflow, put_artifact
from tests.report.test_report import _png_pixels, _rgb

pytestmark = pytest.mark.slow  # the merge job's steps run as in CI, each in its own processes

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = Workflow.load(ROOT / ".github" / "workflows" / "kernel-matrix.yml")
RUNS = ROOT / "tests" / "data" / "runs"
SCREENSHOT = ROOT / "docs" / "images" / "kernel-matrix.png"
K61, K612 = "6.1.192-3", "6.12.117-1"  # the exact names the plan resolves "6.1 6.12" to


def start(tmp_path: Path, uploaded: list[str], **inputs) -> LocalRun:
    """A run whose plan job has run for 6.1 and 6.12, and whose kernel jobs uploaded the saved runs named."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    run = LocalRun(
        WORKFLOW,
        tmp_path / "work",
        inputs={
            "harness-repository": "local/bpf-vm-harness",
            "harness-ref": "HEAD",
            "kernels": "6.1 6.12",
            **inputs,
        },
        checkouts={"project": project, "harness": ROOT},
    )
    plan = run.job("plan")
    assert plan.result == "success", plan.log
    assert plan.outputs["kernels"] == f'["{K61}", "{K612}"]'
    for kernel in uploaded:
        saved = RUNS / f"run-{kernel.rsplit('.', 1)[0]}.json"
        put_artifact(run, f"results-{kernel}", {f"results-{kernel}.json": saved})
    run.stand_in("kernel", "success" if len(uploaded) == 2 else "failure")
    return run


def failing_cells() -> list[records.CaseRecord]:
    return matrix.merge([records.load(RUNS / "run-both.json")]).failures()


def test_any_failure_fails_with_the_matrix_in_the_summary_and_one_error_per_failing_cell(tmp_path):
    run = start(tmp_path, [K61, K612])
    job = run.job("matrix")
    assert job.result == "failure", job.log
    assert "## BPF cases x kernels" in job.summary and f"| case | {K61} | {K612} |" in job.summary
    assert "**Verdict: failed** under the policy `any-failure`: 5 failing cell(s)." in job.summary
    errors = job.errors()
    assert len(errors) == len(failing_cells()) == 5
    for cell in failing_cells():
        props, message = next(
            e for e in errors if e[0]["title"].startswith(cell.case.split("::")[1] + " on " + cell.kernel)
        )
        assert props["file"] == "tests/data/reportcases/demo_cases.py"
        assert props["title"].endswith(f": {cell.outcome}")
        assert message.splitlines()[-1] == f"reproduce: {cell.reproduce}"
    bpf = next(m for p, m in errors if f"missing_r0 on {K61}" in p["title"])
    assert "errno: EACCES" in bpf
    page = run.artifacts / "kernel-matrix" / "matrix.html"
    assert page.stat().st_size > 5000 and records.load(page.parent / "merged.json").complete


def test_never_passes_and_reports_the_failures_as_warnings(tmp_path):
    job = start(tmp_path, [K61, K612], policy="never").job("matrix")
    assert job.result == "success", job.log
    assert not job.errors() and len([a for a in job.annotations if a[0] == "warning"]) == 5
    assert "**Verdict: passed** under the policy `never`: 5 failing cell(s)" in job.summary


def test_regressions_only_needs_a_baseline(tmp_path):
    job = start(tmp_path, [K61, K612], policy="regressions-only").job("matrix")
    assert job.result == "failure"
    assert "the policy regressions-only needs a baseline" in job.log


def test_regressions_only_passes_when_the_failures_were_there_before(tmp_path):
    run = start(tmp_path, [K61, K612], policy="regressions-only", baseline="ci/baseline.json")
    (tmp_path / "project" / "ci").mkdir()
    shutil.copy(RUNS / "run-both.json", tmp_path / "project" / "ci" / "baseline.json")
    job = run.job("matrix")
    assert job.result == "success", job.log
    assert not job.errors()
    assert all("not a regression" in m for level, _, m in job.annotations if level == "warning")
    assert (
        "**Verdict: passed** under the policy `regressions-only`: 0 regression(s), "
        "5 failing cell(s) that are not regressions (against the baseline `ci/baseline.json`)."
    ) in job.summary


def test_regressions_only_fails_on_exactly_the_regressed_cell(tmp_path):
    run = start(tmp_path, [K61, K612], policy="regressions-only", baseline="baseline.json")
    good = records.load(RUNS / "run-both.json")
    healed = next(c for c in good.cases if c.case.endswith("test_fails_on_6_12_only") and c.kernel == K612)
    healed.outcome, healed.message, healed.reproduce = "passed", None, None
    records.dump(good, tmp_path / "project" / "baseline.json")
    job = run.job("matrix")
    assert job.result == "failure", job.log
    assert [p["title"] for p, _ in job.errors()] == [f"test_fails_on_6_12_only on {K612}: failed"]
    assert (
        "**Verdict: failed** under the policy `regressions-only`: 1 regression(s), 4 failing" in job.summary
    )


def test_a_kernel_job_without_results_fails_the_run_and_is_named(tmp_path):
    job = start(tmp_path, [K61]).job("matrix")
    assert job.result == "failure"
    assert ({"title": f"no results from kernel {K612}"}, job.errors()[-1][1]) == job.errors()[-1]
    assert f"no results from {K612}" in job.summary


def test_no_results_at_all_fails_with_a_summary_that_says_so(tmp_path):
    job = start(tmp_path, [], policy="never").job("matrix")
    assert job.result == "failure"
    assert "No results" in job.summary and "no results-*.json" in job.log


def bands(pixels: list, width: int, colour: str) -> int:
    """How many separate horizontal bands (10 rows or more, each with 10 pixels or more) show the colour."""
    rgb, rows = _rgb(colour), []
    for y in range(len(pixels) // width):
        rows.append(sum(1 for p in pixels[y * width : (y + 1) * width] if p == rgb) >= 10)
    starts = [y for y, on in enumerate(rows) if on and (y == 0 or not rows[y - 1])]
    return sum(1 for y in starts if sum(rows[y : y + 10]) >= 10)


def test_matrix_page_in_headless_chromium(tmp_path):
    """The page the merge job uploads, as the README shows it (UPDATE_DOCS=1 rewrites docs/images/kernel-matrix.png)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package chromium; ci/setup.sh installs it)")
    run = start(tmp_path, [K61, K612])
    run.job("matrix")
    page = run.artifacts / "kernel-matrix" / "matrix.html"
    shot = tmp_path / "matrix.png"
    r = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1100,1500",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), f"chromium exit {r.returncode}: {r.stderr[-2000:]}"
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1100, 1500)
    counts = {
        o: sum(1 for p in pixels if p == _rgb(matrix.COLOURS[o])) for o in ("passed", "failed", "error")
    }
    assert counts["passed"] > 30 * 400, counts
    # the legend has one band of each colour; failing cells sit on two more rows, errors on one
    assert bands(pixels, width, matrix.COLOURS["failed"]) >= 3
    assert bands(pixels, width, matrix.COLOURS["error"]) >= 2
    if os.environ.get("UPDATE_DOCS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
    # the README's picture is such a screenshot, not a stale or missing file
    assert _png_pixels(SCREENSHOT)[:2] == (1100, 1500), (
        "run with UPDATE_DOCS=1 to make docs/images/kernel-matrix.png"
    )
