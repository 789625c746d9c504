"""Any user: `pytest --kernel 6.1` as a real unprivileged user, with their own virtualenv (the harness
installed from a wheel) and their own kernel cache, on a real boot. TCG needs no privilege at all."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.report import records
from tests.plugin.test_outside import project
from tests.vmtools import require_vm_host

USER = "bpf-harness-user"
PATH = "/usr/local/bin:/usr/bin:/bin"


def _user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True, timeout=60)
        return pwd.getpwnam(USER)


def as_user(user: pwd.struct_passwd, *cmd: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """cmd as user: no capability, no group of root's, none of root's environment."""
    env = {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "PATH": PATH,
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.vm
def test_an_unprivileged_user_runs_kernel_tests_with_their_own_venv_and_cache(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("creating the unprivileged test user needs root; this run is not root")
    require_vm_host()
    python = shutil.which("python3", path=PATH)  # root's interpreter may sit where the user cannot read
    if python is None:
        pytest.skip(f"no python3 on {PATH} for the unprivileged user")
    user = _user()
    repo = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"  # setuptools builds in the source tree: keep the checkout clean
    shutil.copytree(
        repo, source, ignore=shutil.ignore_patterns(".git", ".venv", "results", "build", "__pycache__")
    )
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=600)

    # Everything the user reads lives in their home (pytest's tmp_path is root's, mode 0700).
    work = Path(user.pw_dir) / f"run-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        wheel = shutil.copy(next(dist.glob("bpf_vm_harness-*.whl")), work)
        where = shutil.copytree(project(tmp_path), work / "project")
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(work)], check=True, timeout=60)
        venv = work / "venv"
        made = as_user(user, python, "-m", "venv", str(venv), cwd=work, timeout=300)
        assert made.returncode == 0, made.stderr
        installed = as_user(user, str(venv / "bin/pip"), "install", "-q", wheel, cwd=work, timeout=900)
        assert installed.returncode == 0, installed.stderr[-3000:]

        # fmt: off
        r = as_user(user, str(venv / "bin/python"), "-m", "pytest", "-p", "no:cacheprovider", "--kernel", "6.1",
                    "--results-dir", str(work / "r"), "kernelcheck.py", "test_unittest_style.py",
                    cwd=where, timeout=1800)
        # fmt: on
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-6000:]
        run = records.load(work / "r" / "results.json")
        assert run.cases and {c.outcome for c in run.cases} == {"passed"}, out[-3000:]
        (kernel,) = run.kernels
        assert kernel.release.startswith("6.1."), kernel  # kernelcheck.py also checks each test's own uname
        # the user's own kernel cache, not root's: under their home, owned by them
        cached = Path(user.pw_dir) / ".cache" / "bpf-vm-harness" / "kernels"
        assert any(cached.iterdir()), f"nothing in {cached}"
        assert all(p.stat().st_uid == user.pw_uid for p in cached.iterdir())
        console = next((work / "r" / "vm-logs").glob("*.console.log")).read_text()
        header = "\n".join(console.splitlines()[:2])  # vng's command, then the guest's
        assert f"{venv}/bin/python -B -P -m harness.guest" in header
    finally:
        shutil.rmtree(work, ignore_errors=True)
