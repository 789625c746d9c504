"""The results file: schema round-trip, atomic writes, and a real pytest run on the host kernel writing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.report import records
from harness.report.records import CaseRecord, KernelRecord, ResultsError, RunMeta, RunRecord

ROOT = Path(__file__).resolve().parents[2]
DEMO = "tests/data/reportcases/demo_cases.py"
RUNS = Path(__file__).parents[1] / "data" / "runs"


def _pytest(tmp_path: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--results-dir",
        str(tmp_path / "results"),
        *args,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def _sample() -> RunRecord:
    meta = RunMeta(
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:01:00+00:00",
        host="h",
        host_kernel="6.18",
        harness_version="0.1.0",
        git_commit=None,
        args=["--kernel", "6.1"],
        mode="vm",
        exit_status=1,
        label="x",
    )
    k = KernelRecord(
        name="6.1.192-3",
        spec="6.1.192-3",
        release="6.1.0-56-amd64",
        source="debian",
        sha256="ab" * 32,
        accel="tcg",
        boot_seconds=12.5,
        boots=1,
    )
    c = CaseRecord(
        case="t.py::test_a",
        kernel="6.1.192-3",
        nodeid="t.py::test_a[6.1.192-3]",
        outcome="failed",
        duration=0.5,
        message="boom",
        errno="EACCES",
        verifier_log="R0 !read_ok",
        reproduce="pytest --kernel 6.1.192-3 't.py::test_a[6.1.192-3]'",
    )
    return RunRecord(schema=records.SCHEMA, complete=True, meta=meta, kernels=[k], cases=[c])


def test_round_trip_is_lossless(tmp_path):
    run = _sample()
    path = tmp_path / "r.json"
    records.dump(run, path)
    assert records.load(path) == run
    assert json.loads(path.read_text())["schema"] == records.SCHEMA


def test_saved_real_runs_round_trip():
    for path in sorted(RUNS.glob("*.json")):
        run = records.load(path)
        assert records.loads(records.dumps(run)) == run, path


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.update(schema=records.SCHEMA + 1), "newer harness"),
        (lambda d: d.update(schema="x"), "not a harness results file"),
        (lambda d: d["cases"][0].update(colour="red"), "unknown field(s) colour"),
        (lambda d: d.pop("kernels"), "missing field 'kernels'"),
    ],
)
def test_wrong_files_are_refused_with_a_reason(mutate, expected):
    data = records.to_dict(_sample())
    mutate(data)
    with pytest.raises(ResultsError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        records.loads(json.dumps(data))


def test_truncated_file_is_refused():
    with pytest.raises(ResultsError, match="not valid JSON"):
        records.loads(records.dumps(_sample())[:50], "r.json")


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    records.write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_reproduce_line_is_shell_quoted():
    assert (
        records.reproduce_line("cases/test_x.py::test_y[6.12.111-1.deb12u1]", "6.12.111-1.deb12u1")
        == "pytest --kernel 6.12.111-1.deb12u1 'cases/test_x.py::test_y[6.12.111-1.deb12u1]'"
    )
    assert records.reproduce_line("t.py::test_z", None) == "pytest t.py::test_z"


def test_host_run_writes_a_complete_results_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the demo's BPF case needs root to get its EACCES from the verifier")
    r = _pytest(tmp_path, "--results-label", "host-demo", DEMO)
    assert r.returncode == 1, r.stdout + r.stderr  # the demo fails on purpose
    run = records.load(tmp_path / "results" / "results.json")
    assert run.complete and run.meta.exit_status == 1 and run.meta.mode == "host"
    assert run.meta.label == "host-demo" and run.meta.finished
    assert [k.source for k in run.kernels] == ["host"]
    assert run.kernels[0].release == os.uname().release
    cases = {c.case.rsplit("::", 1)[1]: c for c in run.cases}
    assert {n: c.outcome for n, c in cases.items()} == {
        "test_passes": "passed",
        "test_fails_on_6_12_only": "passed" if not os.uname().release.startswith("6.12") else "failed",
        "test_verifier_rejects_missing_r0": "failed",
        "test_skips": "skipped",
        "test_expected_failure": "xfailed",
        "test_setup_error": "error",
    }
    bpf = cases["test_verifier_rejects_missing_r0"]
    assert bpf.errno == "EACCES" and "R0 !read_ok" in bpf.verifier_log
    assert bpf.reproduce == f"pytest {DEMO}::test_verifier_rejects_missing_r0"
    assert cases["test_skips"].skip_reason == "skipped on purpose by the demo"
    assert cases["test_setup_error"].reproduce and "fixture set-up fails" in cases["test_setup_error"].message
    assert cases["test_passes"].reproduce is None
    assert "results: " in r.stdout


def test_results_json_option_and_no_matrix_for_one_host_kernel(tmp_path):
    out = tmp_path / "elsewhere" / "run.json"
    r = _pytest(tmp_path, "--results-json", str(out), f"{DEMO}::test_passes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert records.load(out).complete
    assert "cases x kernels" not in r.stdout  # one host kernel: no matrix


def test_stopped_run_is_marked_incomplete(tmp_path):
    r = _pytest(tmp_path, "-x", DEMO)
    assert r.returncode == 1
    run = records.load(tmp_path / "results" / "results.json")
    assert not run.complete
    assert "INCOMPLETE" in r.stdout


def test_interrupted_run_is_marked_incomplete(tmp_path):
    slow = tmp_path / "test_slow.py"
    slow.write_text("import time\n\ndef test_first():\n    pass\n\ndef test_sleeps():\n    time.sleep(60)\n")
    out = tmp_path / "run.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-s",
            "--rootdir",
            str(tmp_path),
            "--results-json",
            str(out),
            str(slow),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if out.exists() and records.load(out).complete is False:
            break
        time.sleep(0.2)
    time.sleep(2)  # into test_sleeps
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    run = records.load(out)
    assert run.complete is False and run.meta.exit_status == 2
    assert [c.outcome for c in run.cases if c.case.endswith("test_first")] == ["passed"]


@pytest.mark.slow  # xdist workers: half a minute
def test_nothing_is_recorded_by_xdist_workers(tmp_path):
    r = _pytest(tmp_path, "-n", "2", "-p", "xdist", f"{DEMO}::test_passes", f"{DEMO}::test_skips")
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(p.name for p in (tmp_path / "results").rglob("*.json"))
    assert files == ["results.json"]
    run = records.load(tmp_path / "results" / "results.json")
    assert sorted(c.outcome for c in run.cases) == ["passed", "skipped"]


def test_unwritable_default_results_dir_warns_and_runs(tmp_path):
    """A run that records by default (the ini option) in a read-only checkout still runs, and keeps its results."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "test_one.py").write_text("def test_one():\n    pass\n")
    ro.chmod(0o555)
    drop = "-dac_override,-dac_read_search"
    prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"] if os.geteuid() == 0 else []
    try:
        r = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-o",
                "bpf_results_dir=results",
                "test_one.py",
            ],
            cwd=ro,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        ro.chmod(0o755)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout and "cannot create" in r.stdout
    assert not (ro / "results").exists()
    written = r.stdout.split("results: ", 1)[1].split()[0]
    assert records.load(Path(written)).complete


def test_the_plugin_is_inert_without_kernel_or_results_option(tmp_path):
    """Installed but not asked: no file, no directory, no line of the harness's on the terminal."""
    project = tmp_path / "plain"
    project.mkdir()
    (project / "test_plain.py").write_text("def test_one():\n    pass\n\ndef test_two():\n    assert 1\n")
    before = sorted(p.name for p in project.iterdir())
    runs = {}
    for name, extra in (("with", []), ("without", ["-p", "no:bpf_vm_harness"])):
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        runs[name] = r.stdout
    assert sorted(p.name for p in project.iterdir() if p.name != "__pycache__") == before
    plugins = next(line for line in runs["with"].splitlines() if line.startswith("plugins:"))
    assert "bpf-vm-harness" in plugins  # the plugin was loaded ...

    def body(out: str) -> list[str]:  # ... and said nothing: the same lines but for timings and plugins
        return [
            line.split(" in ")[0] for line in out.splitlines() if not line.startswith(("plugins:", "rootdir"))
        ]

    assert body(runs["with"]) == body(runs["without"])
    rest = runs["with"].replace(plugins, "")
    for word in ("bpf-harness", "results", "kernels"):
        assert word not in rest
