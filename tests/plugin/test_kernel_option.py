"""`pytest --kernel X` as a user types it: bad specs, an unreachable archive, a local mirror that boots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernels.testlib import (
    MAINLINE_DEB,
    Archive,
    catalog_entry,
    checksums_text,
    closed_port,
    debian_table,
    mainline_table,
    real_deb,
    write_catalog,
)
from tests.vmtools import ROOT, junit_outcomes, require_vm_host, run_pytest

CASE = "tests/vmcases/vm_behaviour.py::test_passes"


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "keep").write_text("untouched")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(root))
    return root


def pytest_cli(args, tmp_path, **kw):
    return run_pytest(
        args, tmp_path, timeout=kw.pop("timeout", 120), env={**os.environ, **kw.pop("env", {})}, **kw
    )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            "9.99",
            [
                "kernel 9.99 is not in the catalog",
                "it has the series",
                "6.1.192-3",
                "6.12.117-1",
                "kernels/catalog.toml",
            ],
        ),
        ("/etc/passwd", ["/etc/passwd", "not a Linux kernel image"]),
    ],
)
def test_bad_kernel_is_a_usage_error_and_changes_nothing(tmp_path, cache, spec, words):
    before = tree(cache)
    proc = pytest_cli(["--kernel", spec, CASE], tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    for word in words:
        assert word in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert tree(cache) == before


def test_unreadable_cache_is_a_usage_error(tmp_path, cache):
    prefix = []
    if os.geteuid() == 0:  # root ignores permission bits unless it drops these capabilities
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): cannot make a directory unreadable")
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]
    before = tree(cache)
    cache.chmod(0)
    try:
        proc = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--results-dir",
                str(tmp_path / "r"),
                "--kernel",
                "6.1",
                CASE,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        cache.chmod(0o755)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert str(cache) in proc.stderr and "HARNESS_CACHE_DIR" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert tree(cache) == before


def test_unreachable_mainline_fails_fast_and_lists_alternatives(tmp_path, cache):
    before = tree(cache)
    started = time.monotonic()
    proc = pytest_cli(
        ["--kernel", "6.8", CASE],
        tmp_path,
        env={"HARNESS_MAINLINE_MIRROR": f"http://127.0.0.1:{closed_port()}/mainline/"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unreachable" in proc.stderr and "--kernel" in proc.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s"  # generous: pytest start-up included
    assert "Traceback" not in proc.stderr
    # no kernel entry and no temp directory; filelock's lock files stay by design
    assert [p for p in tree(cache) if not p.startswith(".locks")] == before


@pytest.mark.vm
def test_mainline_from_local_mirror_downloads_verifies_caches_and_boots(tmp_path, tmp_path_factory, cache):
    """A local archive in the mainline layout serving a real kernel package (a Debian one:
    Ubuntu's archive is unreachable here); the catalog's "6.8" points at it."""
    require_vm_host()
    deb = real_deb(tmp_path_factory)
    release = catalog_entry().release  # what the served package contains
    catalog = write_catalog(tmp_path / "catalog.toml", [debian_table(), mainline_table("6.8", release)])
    with Archive() as archive:
        archive.files[f"/v6.8/amd64/{MAINLINE_DEB}"] = deb
        archive.files["/v6.8/amd64/CHECKSUMS"] = checksums_text({MAINLINE_DEB: deb})
        env = {"HARNESS_CATALOG": str(catalog), "HARNESS_MAINLINE_MIRROR": archive.url}
        first = pytest_cli(["--kernel", "6.8", CASE], tmp_path / "first", env=env, timeout=600)
        assert first.returncode == 0, first.stdout + first.stderr
        assert archive.hits[f"/v6.8/amd64/{MAINLINE_DEB}"] == 1
        assert junit_outcomes(tmp_path / "first" / "junit.xml") == {f"{CASE}[6.8]": ("passed", "")}
        assert "6.8 up in" in first.stdout and release in first.stdout
        hits = sum(archive.hits.values())
        second = pytest_cli(["--kernel", "6.8", CASE], tmp_path / "second", env=env, timeout=600)
        assert second.returncode == 0, second.stdout + second.stderr
        assert sum(archive.hits.values()) == hits, "a cached kernel must make no request"


def _cached_copy(root: Path, entry) -> None:
    """A complete cache entry for a Debian catalog entry: its packages' sha256s, an image that is not booted."""
    d = root / entry.name
    (d / "boot").mkdir(parents=True)
    image = d / "boot" / f"vmlinuz-{entry.release}"
    image.write_bytes(b"not booted: --collect-only")
    meta = {
        "schema": 1,
        "name": entry.name,
        "release": entry.release,
        "source": "debian",
        "package": entry.package,
        "suite": entry.suite,
        "debs": {Path(p.filename).name: p.sha256 for p in entry.debs},
        "image": f"boot/vmlinuz-{entry.release}",
        "image_sha256": __import__("hashlib").sha256(image.read_bytes()).hexdigest(),
        "origin": "test",
    }
    (d / "meta.json").write_text(__import__("json").dumps(meta))


@pytest.mark.parametrize(
    "spec,written",
    [
        ("5.10.262", "5.10.262"),  # an older reproduce line: the alias, in --kernel and in the id
        ("5.10.262", "5.10.262-1"),
        ("5.10", "5.10.262-1"),
        ("5.10.262-1", "5.10.262-1"),
    ],
)
def test_ids_carry_the_exact_name_and_an_id_may_name_the_kernel_as_given(tmp_path, cache, spec, written):
    entry = catalog_entry()  # 5.10.262-1
    catalog = write_catalog(tmp_path / "catalog.toml", [debian_table()])
    _cached_copy(cache, entry)
    proc = pytest_cli(
        [
            "--co",
            "-q",
            "--offline",
            "--kernel",
            spec,
            f"{CASE}[{written}]",
            "tests/vmcases/vm_behaviour.py::test_fails",
        ],
        tmp_path,
        env={"HARNESS_CATALOG": str(catalog)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids == [f"{CASE}[{entry.name}]", f"tests/vmcases/vm_behaviour.py::test_fails[{entry.name}]"]
