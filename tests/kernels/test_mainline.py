"""Ubuntu mainline downloads against a local HTTP archive that serves a real kernel package."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from harness.kernels import KernelError, resolve
from harness.kernels.mainline import parse_checksums, pick
from tests.kernels.testlib import (
    MAINLINE_DEB,
    PYTHON,
    REPO,
    Archive,
    catalog_entry,
    checksums_text,
    closed_port,
    debian_table,
    leftovers,
    mainline_table,
    real_deb,
    sha256,
    write_catalog,
)

pytestmark = pytest.mark.slow  # a local archive serving a real kernel package: seconds a test

RELEASE = catalog_entry().release  # what the served package (a real Debian one) really contains
DEB_PATH = f"/v6.8/amd64/{MAINLINE_DEB}"


# --- CHECKSUMS parsing: no network ---------------------------------------

SAMPLE = """\
# Checksums-Sha1:
1111111111111111111111111111111111111111  linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb
# Checksums-Sha256:
{a}  linux-headers-6.8.0-060800_6.8.0-060800.202403131158_all.deb
{b}  linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb
{c}  linux-modules-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb
{d}  linux-image-unsigned-6.8.0-060800-lowlatency_6.8.0-060800.202403131158_amd64.deb
""".format(a="a" * 64, b="b" * 64, c="c" * 64, d="d" * 64)


def test_parse_checksums_reads_only_the_sha256_section():
    sums = parse_checksums(SAMPLE)
    assert len(sums) == 4
    assert sums["linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb"] == "b" * 64


def test_pick_takes_generic_image_then_modules():
    assert pick(parse_checksums(SAMPLE)) == [
        "linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb",
        "linux-modules-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb",
    ]


def test_pick_without_modules_deb_and_without_image():
    sums = parse_checksums(SAMPLE)
    no_modules = {k: v for k, v in sums.items() if "modules" not in k}
    assert pick(no_modules) == [
        "linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb"
    ]
    assert pick({k: v for k, v in sums.items() if "generic" not in k}) == []


# --- against a local archive ---------------------------------------------


@pytest.fixture
def deb(tmp_path_factory):
    return real_deb(tmp_path_factory)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A temp cache and a catalog whose "6.8" is served by the local archive."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    cat = write_catalog(tmp_path / "catalog.toml", [debian_table(), mainline_table("6.8", RELEASE)])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    return cache


@pytest.fixture
def archive(deb, monkeypatch):
    with Archive() as a:
        a.files[DEB_PATH] = deb
        a.files["/v6.8/amd64/CHECKSUMS"] = checksums_text({MAINLINE_DEB: deb})
        monkeypatch.setenv("HARNESS_MAINLINE_MIRROR", a.url)
        yield a


def test_fetch_verifies_extracts_and_caches(env, archive, deb, capfd):
    k = resolve("6.8")
    assert (k.name, k.release, k.source) == ("6.8", RELEASE, "ubuntu-mainline")
    entry = env / "6.8"
    assert k.image == entry / "boot" / f"vmlinuz-{RELEASE}"
    assert sha256(k.image) == k.sha256
    assert (entry / "lib" / "modules" / RELEASE / "modules.dep").stat().st_size > 0  # depmod ran
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["schema"] == 1 and meta["release"] == RELEASE and meta["source"] == "ubuntu-mainline"
    assert meta["debs"] == {MAINLINE_DEB: sha256(deb)}
    assert meta["image_sha256"] == k.sha256 and meta["fetched_at"]
    assert archive.hits[DEB_PATH] == 1
    assert leftovers(env) == []
    # stderr is not a terminal here: a plain line, no progress bar control codes
    err = capfd.readouterr().err
    assert f"fetching {archive.url}{DEB_PATH}" in err and "\r" not in err

    before = sum(archive.hits.values())
    again = resolve("6.8")
    assert again == k
    assert sum(archive.hits.values()) == before, "a cached kernel must not touch the network"


def test_the_archive_url_is_the_catalogs_unless_the_environment_names_another(
    env, archive, tmp_path, monkeypatch
):
    """No host name in the code: the default is the catalog's [sources] `mainline`."""
    monkeypatch.delenv("HARNESS_MAINLINE_MIRROR")
    cat = write_catalog(
        tmp_path / "sources.toml", [mainline_table("6.8", RELEASE)], sources={"mainline": archive.url}
    )
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    assert resolve("6.8", progress=False).release == RELEASE
    assert archive.hits[DEB_PATH] == 1
    meta = json.loads((env / "6.8" / "meta.json").read_text())
    assert meta["tag"] == "v6.8" and meta["origin"] == f"{archive.url}/v6.8/amd64/"
    # the environment wins over the catalog: a closed port now, and the cached copy is not touched
    monkeypatch.setenv("HARNESS_MAINLINE_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(KernelError, match=r"127\.0\.0\.1.* is unreachable"):
        resolve("6.8", force=True, progress=False)


def test_the_packaged_catalog_names_both_archives():
    from harness.kernels.catalog import load_catalog

    sources = load_catalog(REPO / "kernels" / "catalog.toml").sources
    assert set(sources) == {"mainline", "snapshot"} and all(
        u.startswith("https://") for u in sources.values()
    )


def test_old_layout_checksums_at_tag_level(env, deb, monkeypatch):
    with Archive() as a:
        a.files[f"/v6.8/{MAINLINE_DEB}"] = deb
        a.files["/v6.8/CHECKSUMS"] = checksums_text({MAINLINE_DEB: deb})
        monkeypatch.setenv("HARNESS_MAINLINE_MIRROR", a.url)
        k = resolve("6.8", progress=False)
        assert a.hits["/v6.8/amd64/CHECKSUMS"] == 1 and a.hits["/v6.8/CHECKSUMS"] == 1
    assert k.release == RELEASE


def test_checksum_mismatch_leaves_no_entry(env, archive):
    archive.modes[DEB_PATH] = "corrupt"
    with pytest.raises(KernelError, match="checksum mismatch") as e:
        resolve("6.8", progress=False)
    assert "discarded" in str(e.value)
    assert not (env / "6.8").exists()
    assert leftovers(env) == []


def test_connection_dropped_mid_file_leaves_nothing(env, archive):
    archive.modes[DEB_PATH] = "drop"
    with pytest.raises(KernelError, match="broke off"):
        resolve("6.8", progress=False)
    assert archive.hits[DEB_PATH] == 2  # one retry of the body
    assert not (env / "6.8" / "meta.json").exists()
    assert leftovers(env) == []
    # and the next run, with a healthy server, works
    del archive.modes[DEB_PATH]
    assert resolve("6.8", progress=False).release == RELEASE


def test_release_mismatch_with_catalog_is_an_error(env, archive, tmp_path, monkeypatch):
    cat = write_catalog(tmp_path / "other.toml", [mainline_table("6.8", "6.8.0-060800-generic")])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    with pytest.raises(KernelError, match="catalog says release 6.8.0-060800-generic"):
        resolve("6.8", progress=False)
    assert not (env / "6.8").exists() and leftovers(env) == []


def test_interrupted_fetch_leftovers_are_cleaned(env, archive):
    (env / ".tmp-6.8-killed" / "tree").mkdir(parents=True)
    (env / "6.8" / "boot").mkdir(parents=True)  # a torn entry without meta.json
    with pytest.raises(KernelError, match="not in the cache"):
        resolve("6.8", fetch=False)  # incomplete entries never count
    resolve("6.8", progress=False)
    assert leftovers(env) == []
    assert (env / "6.8" / "meta.json").exists()


def test_two_processes_download_once(env, archive):
    code = "from harness.kernels import resolve; print(resolve('6.8', progress=False).sha256)"
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    assert archive.hits[DEB_PATH] == 1
    assert archive.hits["/v6.8/amd64/CHECKSUMS"] == 1


def test_unreachable_archive_fails_fast_and_lists_alternatives(env, monkeypatch):
    monkeypatch.setenv("HARNESS_MAINLINE_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    start = time.monotonic()
    with pytest.raises(KernelError) as e:
        resolve("6.8", progress=False)
    elapsed = time.monotonic() - start
    msg = str(e.value)
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert "Ubuntu mainline archive" in msg and "unreachable" in msg
    assert "no other kernel is available offline: nothing is in the kernel cache" in msg
    assert not (env / "6.8").exists() and leftovers(env) == []


def test_unreachable_archive_lists_cached_kernels(env, archive, monkeypatch, tmp_path):
    resolve("6.8", progress=False)
    cat = write_catalog(tmp_path / "two.toml", [mainline_table("6.8", RELEASE), mainline_table("6.9")])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    monkeypatch.setenv("HARNESS_MAINLINE_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(KernelError, match=r"cached: 6\.8"):
        resolve("6.9", progress=False)
    # the cached one still resolves with the archive gone
    assert resolve("6.8").release == RELEASE


def test_tag_missing_on_archive(env, archive, tmp_path, monkeypatch):
    cat = write_catalog(tmp_path / "c.toml", [mainline_table("6.9")])
    monkeypatch.setenv("HARNESS_CATALOG", str(cat))
    with pytest.raises(KernelError, match="has no v6.9 build"):
        resolve("6.9", progress=False)
