"""Debian kernels from a local HTTP archive serving copies of real InRelease, Packages and .deb files.

The chain under test: InRelease signed (gpgv, Debian archive keyring) ->
Packages.xz hash listed in InRelease -> .deb stanza equal to the catalog
pin -> .deb hash. Each link is broken by one changed byte or one changed
pin, and each break must be refused with a clear error and nothing cached.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness.kernels import KernelError, resolve
from tests.kernels.testlib import (
    DEB_NAME,
    PYTHON,
    REPO,
    SPLIT_NAME,
    Archive,
    catalog_entry,
    debian_table,
    flipped,
    leftovers,
    real_suite,
    sha256,
    signed_text_offset,
    write_catalog,
)

pytestmark = pytest.mark.slow  # a local archive serving real kernel packages: seconds a test

ENTRY = catalog_entry(DEB_NAME)


@pytest.fixture
def real(tmp_path_factory):
    return real_suite(tmp_path_factory)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(d))
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "catalog.toml", [debian_table()])))
    return d


@pytest.fixture
def archive(real, monkeypatch):
    with Archive() as a:
        a.files.update(real.files)
        monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", a.url)
        yield a


def nothing_cached(cache_dir) -> bool:
    entries = (
        [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] if cache_dir.exists() else []
    )
    return entries == [] and leftovers(cache_dir) == []


def test_fetch_checks_the_whole_chain_and_caches(cache_dir, archive, real, capfd):
    k = resolve(DEB_NAME)
    assert (k.name, k.release, k.source, k.package) == (DEB_NAME, ENTRY.release, "debian", ENTRY.package)
    assert k.image == cache_dir / DEB_NAME / "boot" / f"vmlinuz-{ENTRY.release}"
    assert sha256(k.image) == k.sha256
    mods = cache_dir / DEB_NAME / "lib" / "modules" / ENTRY.release
    assert (mods / "modules.dep").stat().st_size > 0 and (mods / "kernel" / "fs" / "9p").is_dir()
    meta = json.loads((cache_dir / DEB_NAME / "meta.json").read_text())
    assert meta["suite"] == ENTRY.suite and meta["debs"] == {real.debs[0].name: ENTRY.debs[0].sha256}
    assert meta["origin"] == f"{archive.url} {ENTRY.suite}"
    # the Packages index is kept by its hash, nothing else is left over
    assert [p.name for p in (cache_dir / ".index").iterdir()] == [f"{sha256(real.files[real.packages])}.xz"]
    assert leftovers(cache_dir) == []
    err = capfd.readouterr().err
    assert f"verified {ENTRY.suite} at {archive.url}: InRelease signed by a key in" in err
    assert f"verified {real.debs[0].name}: sha256 and size match the signed index and the catalog pin" in err

    before = sum(archive.hits.values())
    assert resolve(DEB_NAME) == k
    assert sum(archive.hits.values()) == before, "a cached kernel must not touch the network"


def test_cached_index_is_reused_for_the_next_kernel(cache_dir, archive, real):
    resolve(DEB_NAME, progress=False)
    resolve(DEB_NAME, force=True, progress=False)
    assert archive.hits[real.inrelease] == 2, "InRelease says what the suite carries now: fetched each time"
    assert archive.hits[real.packages] == 1, "the index InRelease lists by hash is taken from the cache"


@pytest.mark.parametrize("target", ["InRelease", "Packages", "deb"])
def test_one_changed_byte_anywhere_is_refused_and_nothing_is_cached(
    cache_dir, archive, real, tmp_path, target
):
    path = {"InRelease": real.inrelease, "Packages": real.packages, "deb": "/" + ENTRY.debs[0].filename}[
        target
    ]
    src = real.files[path]
    offset = signed_text_offset(src) if target == "InRelease" else src.stat().st_size // 2
    archive.files[path] = flipped(src, tmp_path / "tampered", offset)
    expected = {
        "InRelease": "has no valid signature by a key in",
        "Packages": f"checksum mismatch for {archive.url}{path}",
        "deb": f"checksum mismatch for {archive.url}{path}",
    }[target]
    with pytest.raises(KernelError, match=expected) as e:
        resolve(DEB_NAME, progress=False)
    assert "Traceback" not in str(e.value)
    assert nothing_cached(cache_dir)
    index = cache_dir / ".index"
    assert (
        not index.exists()
        or [p for p in index.iterdir() if p.name != f"{sha256(real.files[real.packages])}.xz"] == []
    )
    if target == "InRelease":
        assert archive.hits[real.packages] == 0, "nothing is read on the word of a bad signature"


def test_pin_that_differs_from_the_signed_index_downloads_nothing(cache_dir, archive, tmp_path, monkeypatch):
    cat = write_catalog(tmp_path / "c.toml", [debian_table(deb_sha256="0" * 64)])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    with pytest.raises(
        KernelError,
        match=r"lists .* differently from the catalog \(sha256: index [0-9a-f]{64}, catalog 0{64}\)",
    ):
        resolve(DEB_NAME, progress=False)
    assert archive.hits["/" + ENTRY.debs[0].filename] == 0
    assert nothing_cached(cache_dir)


def test_package_the_suite_dropped_says_how_to_refresh_and_the_cached_copy_still_boots(
    cache_dir, archive, tmp_path, monkeypatch
):
    k = resolve(DEB_NAME, progress=False)
    gone = debian_table(name="5.10.1-1", deb_version="5.10.1-1", deb_sha256="1" * 64)
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "c.toml", [debian_table(), gone])))
    with (
        Archive() as snapshot
    ):  # a snapshot archive that does not have it either (tests/kernels/test_snapshot.py)
        monkeypatch.setenv("HARNESS_SNAPSHOT_MIRROR", snapshot.url)
        with pytest.raises(KernelError) as e:
            resolve("5.10.1-1", progress=False)
    msg = str(e.value)
    assert f"{ENTRY.suite} at {archive.url} no longer carries {ENTRY.package} 5.10.1-1" in msg
    assert f"and the snapshot archive {snapshot.url}/ has no {ENTRY.package} 5.10.1-1" in msg
    assert (
        "python ci/update_catalog.py --write" in msg
        and f"--kernel 5.10 is the newest of the series (now {DEB_NAME})" in msg
    )
    assert "A copy already in the kernel cache boots without any archive" in msg
    assert not (cache_dir / "5.10.1-1").exists()
    archive.server.shutdown()  # the archive gone: the cached kernel still resolves
    assert resolve(DEB_NAME) == k


def test_suite_served_under_another_name_is_refused(cache_dir, archive, real, tmp_path, monkeypatch):
    archive.files["/dists/bookworm/InRelease"] = real.files[real.inrelease]
    cat = write_catalog(tmp_path / "c.toml", [debian_table(suite="bookworm")])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    with pytest.raises(KernelError, match=f"describes suite .*{ENTRY.suite}, not bookworm"):
        resolve(DEB_NAME, progress=False)
    assert nothing_cached(cache_dir)


def test_cached_copy_of_other_packages_is_fetched_again(cache_dir, archive):
    """A regenerated catalog can give a name to a newer build: the old copy must not pass for it."""
    resolve(DEB_NAME, progress=False)
    meta_path = cache_dir / DEB_NAME / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["debs"] = {"older.deb": "1" * 64}
    meta_path.write_text(json.dumps(meta))
    hits = archive.hits["/" + ENTRY.debs[0].filename]
    resolve(DEB_NAME, progress=False)
    assert archive.hits["/" + ENTRY.debs[0].filename] == hits + 1
    assert json.loads(meta_path.read_text())["debs"] != meta["debs"]
    assert leftovers(cache_dir) == []


def test_split_layout_is_made_bootable(tmp_path_factory, tmp_path, monkeypatch):
    """7.x: linux-binary (image under usr/lib/modules), linux-modules, linux-base (modules.builtin, config)."""
    real = real_suite(tmp_path_factory, SPLIT_NAME)
    entry = catalog_entry(SPLIT_NAME)
    assert [p.package.split("-")[1] for p in entry.debs] == ["binary", "modules", "base"]
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "c.toml", [debian_table(SPLIT_NAME)])))
    with Archive() as a:
        a.files.update(real.files)
        monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", a.url)
        k = resolve(SPLIT_NAME, progress=False)
    rel = entry.release
    root = cache / SPLIT_NAME
    assert k.image == root / "boot" / f"vmlinuz-{rel}" and k.release == rel
    mods = root / "lib" / "modules" / rel
    for f in ("modules.dep", "modules.builtin", "modules.order", "config"):
        assert (mods / f).is_file(), f
    assert (root / "boot" / f"config-{rel}").is_file()
    assert not (mods / "vmlinuz").exists() and not (root / "usr" / "lib" / "modules" / rel).exists()
    assert "fs/9p/9p.ko" in (mods / "modules.dep").read_text()
    assert sorted(json.loads((root / "meta.json").read_text())["debs"]) == sorted(d.name for d in real.debs)


def test_split_layout_without_its_base_package_is_an_error(tmp_path_factory, tmp_path, monkeypatch):
    real = real_suite(tmp_path_factory, SPLIT_NAME)
    table = debian_table(SPLIT_NAME)
    table["debs"] = [d for d in table["debs"] if not d["package"].startswith("linux-base-")]
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARNESS_CATALOG", str(write_catalog(tmp_path / "c.toml", [table])))
    with Archive() as a:
        a.files.update(real.files)
        monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", a.url)
        with pytest.raises(KernelError, match="has no modules.builtin or modules.order.*linux-base"):
            resolve(SPLIT_NAME, progress=False)
    assert not (cache / SPLIT_NAME).exists() and leftovers(cache) == []


def test_host_without_debian_sources_or_mirror_is_told_what_to_set(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "other.list").write_text("deb http://example.invalid/ubuntu jammy main\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_DEBIAN_MIRROR", "HARNESS_CATALOG")}
    env |= {"HARNESS_APT_ETC": str(apt), "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run(
        [PYTHON, "-m", "harness", "kernels", "fetch", "5.10"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no Debian archive is configured" in r.stderr
    assert f"{apt}/sources.list.d/" in r.stderr and "set HARNESS_DEBIAN_MIRROR" in r.stderr
    assert "--debian-mirror" in r.stderr
    assert not (tmp_path / "cache" / ENTRY.name).exists()
