"""ci/matrix.py, the plan job: the kernels input against the catalog, as --kernel resolves them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.kernels.catalog import load_catalog, resolve_spec
from harness.report.matrix import kernel_order

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "ci" / "matrix.py"


def plan(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MATRIX), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def kernels(*args: str, env: dict | None = None) -> list[str]:
    r = plan(*args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_default_is_the_newest_kernel_of_every_debian_series():
    catalog = load_catalog()
    series = {e.series for e in catalog.entries if e.source == "debian"}
    expected = sorted((resolve_spec(s, catalog).name for s in series), key=kernel_order)
    assert kernels() == kernels("--kernels", "debian") == expected
    assert len(expected) == len(series) >= 2


def test_series_exact_versions_and_every_version():
    catalog = load_catalog()
    every_61 = [
        e.name for e in sorted(catalog.entries, key=lambda e: kernel_order(e.name)) if e.series == "6.1"
    ]
    assert kernels("--kernels", "6.1", "--every-version") == every_61
    assert kernels("--kernels", " 6.12 ") == [resolve_spec("6.12", catalog).name]
    # an exact name stays itself under --every-version; order is by version, not by the input
    assert kernels("--kernels", "6.12,6.1.190-1", "--every-version")[0] == "6.1.190-1"
    assert kernels("--kernels", "6.1.190-1 6.1.190-1") == ["6.1.190-1"]
    # an upstream version is its newest build, or every build of it; the output is exact names
    assert kernels("--kernels", "6.1.192") == ["6.1.192-3"]
    assert kernels("--kernels", "6.1.192", "--every-version") == ["6.1.192-1", "6.1.192-2", "6.1.192-3"]
    assert kernels("--kernels", "6.12.117-1~deb12u1,debian:6.12.117") == ["6.12.117-1.deb12u1", "6.12.117-1"]


def test_a_source_name_is_every_series_of_that_source():
    catalog = load_catalog()
    mainline = {e.series for e in catalog.entries if e.source == "ubuntu-mainline"}
    got = kernels("--kernels", "ubuntu-mainline")
    assert len(got) == len(mainline)
    # that source's own entry, also for a series Debian has too (5.10)
    assert set(got) == {e.name for e in catalog.entries if e.source == "ubuntu-mainline"}


def test_a_series_added_to_the_catalog_appears_without_a_change(tmp_path):
    text = Path(load_catalog().path).read_text()
    # a copy of the newest 6.12 entry as a new series: only the catalog changes
    entry = resolve_spec("6.12")
    block = text[text.index(f'name = "{entry.name}"') :].split("\n\n", 1)[0]
    new = block.replace(entry.debs[0].version, "9.1.4-1").replace(entry.name, "9.1.4-1")
    new = new.replace('series = "6.12"', 'series = "9.1"')
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text + "\n[[kernel]]\n" + new + "\n")
    assert kernels(env={"HARNESS_CATALOG": str(catalog)})[-1] == "9.1.4-1"


def test_unknown_kernel_is_an_error_that_lists_the_series():
    r = plan("--kernels", "6.1 9.9")
    assert r.returncode == 1 and r.stdout == ""
    assert "'9.9' is not in the catalog" in r.stderr and "6.12" in r.stderr and "debian" in r.stderr
    r = plan("--kernels", "./my-bzImage")
    assert r.returncode == 1 and "is not in the catalog" in r.stderr


def test_github_output_has_the_kernels_and_the_container_options(tmp_path):
    out = tmp_path / "out"
    out.write_text("other=1\n")
    names = kernels("--kernels", "6.1", "--github-output", str(out))
    kvm = "--device /dev/kvm" if os.path.exists("/dev/kvm") else ""
    assert out.read_text() == f"other=1\nkernels={json.dumps(names)}\ncontainer-options={kvm}\n"
