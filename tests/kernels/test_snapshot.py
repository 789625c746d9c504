"""A pin the archive's suite no longer carries, fetched from a local server in the snapshot archive's layout.

The suite is real (a copy of bookworm-security's signed InRelease and
Packages, which do not list the 5.10 kernel), and so is the package the
snapshot server hands out (the real linux-image-5.10.0-*-amd64-unsigned .deb
that 5.10.262-1 pins), under /mr/binary/.../binfiles and /file/<sha1> as the
snapshot archive's API lays them out. This machine cannot reach the real
snapshot archive, and no test needs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.kernels import KernelError, resolve
from tests.kernels.testlib import (
    DEB_NAME,
    Archive,
    catalog_entry,
    closed_port,
    debian_table,
    leftovers,
    real_suite,
    sha256,
    snapshot_files,
    write_catalog,
)

pytestmark = pytest.mark.slow  # a local archive serving real kernel packages: seconds a test

ENTRY = catalog_entry(DEB_NAME)
OTHER_SUITE = "bookworm-security"  # real, signed, and without linux-image-5.10.0-*


@pytest.fixture
def real(tmp_path_factory):
    return real_suite(tmp_path_factory, DEB_NAME, suite=OTHER_SUITE)


@pytest.fixture
def archive(real, monkeypatch):
    """The Debian archive: a real suite that does not carry the entry's package."""
    with Archive() as a:
        a.files.update(real.files)
        monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", a.url)
        yield a


@pytest.fixture
def snap(real):
    with Archive() as s:
        s.files.update(snapshot_files(ENTRY.debs[0], real.debs[0]))
        yield s


def dropped(tmp_path, monkeypatch, snapshot_url: str, *, env: str | None = None) -> Path:
    """Cache and catalog: the entry's real pins under a suite that no longer lists them; [sources]
    names snapshot_url; env, if given, becomes HARNESS_SNAPSHOT_MIRROR."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    table = debian_table(suite=OTHER_SUITE)
    cat = write_catalog(tmp_path / "catalog.toml", [table], sources={"snapshot": snapshot_url})
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    if env is None:
        monkeypatch.delenv("HARNESS_SNAPSHOT_MIRROR", raising=False)
    else:
        monkeypatch.setenv("HARNESS_SNAPSHOT_MIRROR", env)
    return cache


def _file_path(snap: Archive) -> str:
    return next(p for p in snap.files if p.startswith("/file/"))


@pytest.mark.parametrize("given", ["catalog", "environment"])
def test_a_dropped_pin_comes_from_the_snapshot_archive_by_its_hash(
    tmp_path, monkeypatch, archive, snap, real, capfd, given
):
    if given == "catalog":  # the URL is data: the catalog's [sources]
        cache = dropped(tmp_path, monkeypatch, snap.url)
    else:  # HARNESS_SNAPSHOT_MIRROR wins over the catalog's
        cache = dropped(tmp_path, monkeypatch, f"http://127.0.0.1:{closed_port()}/", env=snap.url)
    k = resolve("5.10.262")  # an alias, resolved to the exact name
    assert (k.name, k.release, k.package) == (DEB_NAME, ENTRY.release, ENTRY.package)
    assert k.image == cache / DEB_NAME / "boot" / f"vmlinuz-{ENTRY.release}" and sha256(k.image) == k.sha256
    meta = json.loads((cache / DEB_NAME / "meta.json").read_text())
    assert meta["debs"] == {real.debs[0].name: ENTRY.debs[0].sha256}
    assert f"from the snapshot archive {snap.url}/: {real.debs[0].name}" in meta["origin"]
    listing = f"/mr/binary/{ENTRY.package}/{ENTRY.debs[0].version}/binfiles"
    assert snap.hits[listing] == 1 and snap.hits[_file_path(snap)] == 1
    assert archive.hits["/" + ENTRY.debs[0].filename] == 0, "the suite does not list it: not asked for"
    err = capfd.readouterr().err
    assert f"{OTHER_SUITE} at {archive.url} no longer carries {ENTRY.package} {ENTRY.debs[0].version}" in err
    assert "sha256 and size match the catalog pin (from the snapshot archive)" in err
    assert leftovers(cache) == []


def test_a_suite_the_archive_no_longer_has_at_all_is_no_dead_end(tmp_path, monkeypatch, archive, snap, real):
    """Debian retires whole suites (bullseye-security moves out of the archive): its pins too come from snapshot."""
    cache = dropped(tmp_path, monkeypatch, snap.url)
    table = debian_table(suite="bullseye-retired")
    cat = write_catalog(tmp_path / "retired.toml", [table], sources={"snapshot": snap.url})
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    k = resolve(DEB_NAME, progress=False)
    assert sha256(k.image) == k.sha256 and k.release == ENTRY.release
    assert json.loads((cache / DEB_NAME / "meta.json").read_text())["origin"].startswith(
        "from the snapshot archive"
    )
    assert archive.hits["/dists/bullseye-retired/InRelease"] == 1 and snap.hits[_file_path(snap)] == 1


def _refused(tmp_path, monkeypatch, url: str) -> tuple[str, Path]:
    cache = dropped(tmp_path, monkeypatch, url)
    with pytest.raises(KernelError) as e:
        resolve(DEB_NAME, progress=False)
    msg = str(e.value)
    assert f"kernel {DEB_NAME}: {OTHER_SUITE} at " in msg and f"no longer carries {ENTRY.package}" in msg
    # what to do: either way out
    assert "set HARNESS_SNAPSHOT_MIRROR to a reachable snapshot archive" in msg
    assert "python ci/update_catalog.py --write" in msg and "--kernel 5.10 is the newest of the series" in msg
    assert not (cache / DEB_NAME).exists() and leftovers(cache) == []
    return msg, cache


def test_an_unreachable_snapshot_archive_says_so_and_what_to_do(tmp_path, monkeypatch, archive):
    url = f"http://127.0.0.1:{closed_port()}/"
    msg, _ = _refused(tmp_path, monkeypatch, url)
    assert f"and the snapshot archive {url} is unreachable" in msg


def test_a_snapshot_archive_without_the_package_says_so(tmp_path, monkeypatch, archive):
    with Archive() as empty:
        msg, _ = _refused(tmp_path, monkeypatch, empty.url)
    assert f"has no {ENTRY.package} {ENTRY.debs[0].version}" in msg and "answered 404" in msg


def test_a_listed_file_of_another_size_is_not_downloaded(tmp_path, monkeypatch, archive, real):
    files = snapshot_files(ENTRY.debs[0], real.debs[0])
    listing_path = next(p for p in files if p.startswith("/mr/"))
    listing = json.loads(files[listing_path])  # type: ignore[arg-type]
    for infos in listing["fileinfo"].values():
        infos[0]["size"] += 1
    with Archive() as snap:
        snap.files.update(files)
        snap.files[listing_path] = json.dumps(listing).encode()
        msg, _ = _refused(tmp_path, monkeypatch, snap.url)
        assert snap.hits[_file_path(snap)] == 0
    assert f"lists no amd64 file of {ENTRY.package}" in msg and f"with {ENTRY.debs[0].size} bytes" in msg


def test_a_file_that_is_not_the_pinned_one_is_discarded(tmp_path, monkeypatch, archive, snap):
    snap.modes[_file_path(snap)] = "corrupt"  # one changed byte
    msg, _ = _refused(tmp_path, monkeypatch, snap.url)
    assert f"has no file with the pinned sha256 {ENTRY.debs[0].sha256}" in msg and "checksum mismatch" in msg


def test_something_that_is_not_the_snapshot_api_is_named(tmp_path, monkeypatch, archive, snap):
    listing_path = next(p for p in snap.files if p.startswith("/mr/"))
    snap.files[listing_path] = b"<html>a login page</html>"
    msg, _ = _refused(tmp_path, monkeypatch, snap.url)
    assert "is not the snapshot archive's API" in msg and "HARNESS_SNAPSHOT_MIRROR" in msg
