"""The kernel cache with a real Debian package: damage, permissions, read-only use, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.kernels import KernelError, resolve
from harness.kernels.cache import Cache
from harness.kernels.catalog import load_catalog
from harness.kernels.debian import DebianSource
from tests.kernels.testlib import (
    DEB_NAME,
    PYTHON,
    REPO,
    Archive,
    catalog_entry,
    debian_table,
    leftovers,
    real_suite,
    sha256,
    write_catalog,
)

ENTRY = catalog_entry()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(d))
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "catalog.toml", [debian_table()])))
    return d


def _snapshot(root: Path) -> list[tuple[str, int, int]]:
    if not root.exists():
        return []
    out = [(".", root.stat().st_mode, root.stat().st_mtime_ns)]
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out.append((str(p.relative_to(root)), st.st_mode, st.st_mtime_ns))
    return out


@pytest.fixture
def served(tmp_path_factory, monkeypatch):
    """The real archive files of DEB_NAME behind a local server named by HARNESS_DEBIAN_MIRROR."""
    real = real_suite(tmp_path_factory)
    with Archive() as a:
        a.files.update(real.files)
        monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", a.url)
        yield a


@pytest.mark.slow  # a real kernel fetched again from a local archive
def test_damaged_cache_entry_is_detected_and_force_repairs_it(cache_dir, served):
    k = resolve(DEB_NAME, progress=False)
    with open(k.image, "r+b") as f:
        f.seek(4096)
        f.write(b"\0garbage")
    with pytest.raises(KernelError, match=rf"python -m harness kernels fetch --force {DEB_NAME}"):
        resolve(DEB_NAME)
    repaired = resolve(DEB_NAME, force=True, progress=False)
    assert sha256(repaired.image) == k.sha256
    assert leftovers(cache_dir) == []


def test_fetch_disabled_and_not_cached(cache_dir):
    with pytest.raises(KernelError, match=rf"not in the cache.*python -m harness kernels fetch {DEB_NAME}"):
        resolve(DEB_NAME, fetch=False)
    assert not cache_dir.exists()


# --- an unusable cache directory: clear error, nothing touched ------------


def test_cache_path_is_a_file(tmp_path, monkeypatch):
    f = tmp_path / "cachefile"
    f.write_text("not a dir")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(f / "kernels"))
    with pytest.raises(KernelError, match="HARNESS_CACHE_DIR") as e:
        Cache().install(ENTRY, DebianSource(), progress=False)
    assert str(f) in str(e.value) and "not writable" in str(e.value)
    assert f.read_text() == "not a dir"


def _run_without_dac_override(code: str, env: dict) -> subprocess.CompletedProcess:
    """Root ignores permission bits; without CAP_DAC_OVERRIDE/READ_SEARCH it obeys them."""
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip(
                "running as root and setpriv (util-linux) is missing, so permission bits cannot be tested"
            )
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]
    return subprocess.run(
        [*prefix, PYTHON, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.mark.parametrize("mode,word", [(0o555, "not writable"), (0o000, "not readable")])
def test_unwritable_or_unreadable_cache_dir(tmp_path, mode, word):
    root = tmp_path / "cache"
    root.mkdir()
    (root / "keep").write_text("x")
    cat = write_catalog(tmp_path / "catalog.toml", [debian_table()])
    root.chmod(mode)
    try:
        before = _snapshot(root)
        code = (
            "from harness.__main__ import main; import sys; "
            f"sys.exit(main(['kernels', 'fetch', '-q', '{DEB_NAME}']))"
        )
        r = _run_without_dac_override(code, {"HARNESS_CACHE_DIR": str(root), "HARNESS_CATALOG": str(cat)})
        assert r.returncode == 1, r.stderr
        assert word in r.stderr and str(root) in r.stderr and "HARNESS_CACHE_DIR" in r.stderr
        assert "Traceback" not in r.stderr
        assert _snapshot(root) == before
    finally:
        root.chmod(0o755)


def test_cache_under_unwritable_parent_creates_nothing(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    cat = write_catalog(tmp_path / "catalog.toml", [debian_table()])
    parent.chmod(0o555)
    try:
        code = (
            "from harness.__main__ import main; import sys; "
            f"sys.exit(main(['kernels', 'fetch', '-q', '{DEB_NAME}']))"
        )
        r = _run_without_dac_override(
            code, {"HARNESS_CACHE_DIR": str(parent / "a" / "b"), "HARNESS_CATALOG": str(cat)}
        )
        assert r.returncode == 1 and "not writable" in r.stderr and "Traceback" not in r.stderr
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_readonly_cache_with_complete_entry_still_resolves(tmp_path, monkeypatch):
    """A cache prepared by CI and mounted read-only needs no write to be used."""
    root = tmp_path / "cache"
    entry = root / "6.8"
    (entry / "boot").mkdir(parents=True)
    image = entry / "boot" / "vmlinuz-6.8.0-060800-generic"
    image.write_bytes(b"fake image")
    (entry / "meta.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "name": "6.8",
                "release": "6.8.0-060800-generic",
                "source": "ubuntu-mainline",
                "package": None,
                "tag": "v6.8",
                "image": "boot/vmlinuz-6.8.0-060800-generic",
                "image_sha256": sha256(image),
                "origin": "test",
                "fetched_at": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(root))
    monkeypatch.delenv("HARNESS_CATALOG", raising=False)
    before = _snapshot(root)
    k = resolve("6.8", fetch=False)
    assert k.image == image and k.source == "ubuntu-mainline"
    assert _snapshot(root) == before


# --- a cache entry is its build, whatever name it was fetched under ---------------


def _copy_under(root: Path, name: str, entry_dir: Path) -> Path:
    """A complete cache entry as an older harness left it: the same files under another name."""
    d = root / name
    shutil.copytree(entry_dir, d, symlinks=True)
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "name": name}))
    return d


@pytest.mark.slow  # a real kernel fetched from a local archive
def test_a_copy_under_an_older_name_is_used_where_it_is_and_named_exactly(cache_dir, served, monkeypatch):
    """An older harness cached 5.10.262-1 as "5.10.262": no download, nothing written, the exact name."""
    first = resolve(DEB_NAME, progress=False)
    old = _copy_under(cache_dir, "5.10.262", cache_dir / DEB_NAME)
    shutil.rmtree(cache_dir / DEB_NAME)
    served.hits.clear()
    before = _snapshot(cache_dir)
    k = resolve("5.10.262", progress=False)  # the alias; the exact name works the same
    assert k.name == DEB_NAME and k.image == old / "boot" / first.image.name and k.sha256 == first.sha256
    assert resolve(DEB_NAME, fetch=False).image == k.image
    assert sum(served.hits.values()) == 0 and _snapshot(cache_dir) == before


@pytest.mark.slow  # a real kernel fetched from a local archive
def test_a_copy_of_another_build_under_the_name_is_never_used(cache_dir, served, tmp_path, monkeypatch):
    """ "6.1.192" meant -2 one day and -3 the next: a copy is used only if its packages are the entry's."""
    resolve(DEB_NAME, progress=False)
    other = debian_table(name="5.10.262-9", deb_version="5.10.262-9", deb_sha256="0" * 64)
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "other.toml", [other])))
    _copy_under(cache_dir, "5.10.262-9", cache_dir / DEB_NAME)  # the name, but not the build
    cat = load_catalog()
    assert Cache(cache_dir).find(cat.entries[0]) is None
    with pytest.raises(KernelError, match="not in the cache"):
        resolve("5.10.262-9", fetch=False)


# --- the command line --------------------------------------------------------


def _cli(*args, env=None):
    return subprocess.run(
        [PYTHON, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_unknown_kernel_exits_nonzero_without_traceback(tmp_path):
    r = _cli("kernels", "fetch", "9.99", env={"HARNESS_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.startswith("error: kernel 9.99 is not in the catalog ")
    assert "it has the series 5.10, 5.15, 6.1," in r.stderr and "such as 5.10.262-1, 6.1.192-3," in r.stderr
    assert "python -m harness kernels list" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_list_shows_catalog_suite_cached_flag_and_series_choice(tmp_path):
    r = _cli("kernels", "list", env={"HARNESS_CACHE_DIR": str(tmp_path), "COLUMNS": "220"})
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") >= 6}
    assert len(rows) == len(load_catalog(REPO / "kernels" / "catalog.toml").entries)
    assert "5.10.0-46-amd64" in rows["5.10.262-1"] and "bullseye-security" in rows["5.10.262-1"]
    assert " no " in rows["5.10.262-1"]
    assert "ubuntu-mainline" in rows["6.8"]
    # the rule for a series both sources have is shown: 5.10 picks Debian's newest
    assert (
        "5.10 *" in rows["5.10.262-1"] and "5.10 *" not in rows["5.10"] and "5.10 *" not in rows["5.10.259-1"]
    )
    assert "debian, ubuntu-mainline" in r.stdout and "mainline:5.10" in r.stdout
    # version order: 5.10.x before 6.1.x before 6.12.x before 7.x, builds of one version as Debian orders them
    names = list(rows)
    assert (
        names.index("5.10.262-1")
        < names.index("6.1.170-3")
        < names.index("6.12.117-1")
        < names.index("7.3.4-1.bpo13+1")
    )
    assert names.index("6.1.192-2") < names.index("6.1.192-3")
    assert names.index("6.12.117-1.deb12u1") < names.index("6.12.117-1")


@pytest.mark.slow  # a real kernel fetched from a local archive
def test_cli_fetch_shows_verification_then_the_kernel(cache_dir, served):
    r = _cli("kernels", "fetch", DEB_NAME)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{DEB_NAME}: {cache_dir / DEB_NAME / 'boot'}")
    assert (
        "InRelease signed by a key in" in r.stderr
        and "match the signed index and the catalog pin" in r.stderr
    )
    r = _cli("kernels", "list", env={"COLUMNS": "220"})
    line = next(x for x in r.stdout.splitlines() if f" {DEB_NAME} " in x)
    assert " yes " in line
