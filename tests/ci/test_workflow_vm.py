"""kernel-matrix.yml end to end, locally: the plan job from inputs, the kernel job on a real kernel (one VM), the merge job on its real results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.kernels.cache import default_root
from harness.kernels.catalog import resolve_spec
from harness.report import records
from tests.ci.runner import LocalRun, Workflow
from tests.vmtools import require_vm_host

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = Workflow.load(ROOT / ".github" / "workflows" / "kernel-matrix.yml")
DEMO = ROOT / "tests" / "data" / "reportcases" / "demo_cases.py"


def user_project(where: Path) -> Path:
    """A project of a user's: BPF tests under tests/, found through its own testpaths."""
    (where / "tests").mkdir(parents=True)
    (where / "tests" / "test_bpf.py").write_text(DEMO.read_text())
    (where / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    return where


@pytest.mark.vm
def test_plan_kernel_job_and_merge_on_a_real_kernel(tmp_path):
    require_vm_host()
    kernel = resolve_spec("6.1").name
    project = user_project(tmp_path / "project")
    run = LocalRun(
        WORKFLOW,
        tmp_path / "work",
        inputs={
            "harness-repository": "local/bpf-vm-harness",
            "harness-ref": "HEAD",
            "kernels": "6.1",
            # quoting survives the trip through the input, the environment and the script
            "pytest-args": "-k 'not test_skips and not test_passes'",
        },
        checkouts={"project": project, "harness": ROOT},
        kernel_cache=default_root(),
    )

    plan = run.job("plan")
    assert plan.result == "success", plan.log
    assert json.loads(plan.outputs["kernels"]) == [kernel]

    job = run.job("kernel", matrix={"kernel": kernel}, timeout=1500)
    assert job.result == "success", job.log  # failing tests are the merge job's to judge
    assert "enable-kvm: " in job.log and ("VMs will use KVM" in job.log or "VMs will use TCG" in job.log)
    assert ("warning", {"title": f"tests failed on {kernel}"}) == job.annotations[0][:2]
    uploaded = run.artifacts / f"results-{kernel}" / kernel
    result = records.load(uploaded / f"results-{kernel}.json")
    assert result.complete and [k.name for k in result.kernels] == [kernel]
    assert result.kernels[0].accel in ("kvm", "tcg") and result.kernels[0].boot_seconds
    outcomes = {c.case.rsplit("::", 1)[1]: c.outcome for c in result.cases}
    assert outcomes == {
        "test_fails_on_6_12_only": "passed",
        "test_verifier_rejects_missing_r0": "failed",
        "test_expected_failure": "xfailed",
        "test_setup_error": "error",
    }
    assert (uploaded / f"junit-{kernel}.xml").is_file() and any((uploaded / "vm-logs").iterdir())

    merge = run.job("matrix")
    assert merge.result == "failure", merge.log  # the default policy, any-failure
    assert f"| case | {kernel} |" in merge.summary
    assert "**Verdict: failed** under the policy `any-failure`: 2 failing cell(s)." in merge.summary
    errors = {props["title"]: (props["file"], message) for props, message in merge.errors()}
    assert set(errors) == {
        f"test_verifier_rejects_missing_r0 on {kernel}: failed",
        f"test_setup_error on {kernel}: error",
    }
    path, message = errors[f"test_verifier_rejects_missing_r0 on {kernel}: failed"]
    assert path == "tests/test_bpf.py"
    assert "errno: EACCES" in message
    assert message.splitlines()[-1] == (
        f"reproduce: pytest --kernel {kernel} 'tests/test_bpf.py::test_verifier_rejects_missing_r0[{kernel}]'"
    )
    page = run.artifacts / "kernel-matrix"
    assert (page / "matrix.html").stat().st_size > 3000

    # the same real results judged against a baseline made from them, as docs/github-actions.md says
    merged = records.load(page / "merged.json")
    records.dump(merged, project / "baseline.json")
    run.inputs.update(policy="regressions-only", baseline="baseline.json")
    assert run.job("matrix").result == "success"
    # ... and against one where the verifier case still passed: that cell alone is the regression
    cell = next(c for c in merged.cases if c.case.endswith("test_verifier_rejects_missing_r0"))
    cell.outcome, cell.message, cell.errno, cell.reproduce = "passed", None, None, None
    records.dump(merged, project / "baseline.json")
    again = run.job("matrix")
    assert again.result == "failure"
    assert [p["title"] for p, _ in again.errors()] == [
        f"test_verifier_rejects_missing_r0 on {kernel}: failed"
    ]
