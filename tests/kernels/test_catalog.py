"""The kernel catalog: it loads, it matches apt's index, and specs resolve by the documented rules."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from harness.kernels import KernelError, resolve
from harness.kernels.catalog import CatalogEntry, LocalSpec, load_catalog, resolve_spec

from tests.kernels.testlib import REPO, write_catalog

CATALOG = REPO / "kernels" / "catalog.toml"
MAINLINE = [
    "5.10",
    "5.15",
    "6.6",
    "6.8",
    "6.9",
    "6.10",
    "6.11",
    "6.13",
    "6.14",
    "6.15",
    "6.16",
    "6.17",
    "6.18",
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CATALOG)


def fake_bzimage(path: Path, version: str = "6.9.0-test (me@host) #1 SMP") -> Path:
    """Just enough of the x86 boot header for the checks: magic and version string."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x400)  # string at 0x200 + 0x400
    s = version.encode() + b"\0"
    data[0x600 : 0x600 + len(s)] = s
    path.write_bytes(bytes(data))
    return path


def test_catalog_loads_with_both_sources(catalog):
    debian = [e for e in catalog.entries if e.source == "debian"]
    mainline = [e for e in catalog.entries if e.source == "ubuntu-mainline"]
    assert {e.series for e in debian} == {"6.1", "6.12"}
    assert sorted(e.name for e in mainline) == sorted(MAINLINE)
    for e in mainline:
        assert e.tag == f"v{e.name}" and e.sha256 is None  # verified against CHECKSUMS instead
    for e in debian:
        assert e.package.endswith("-amd64-unsigned") and "cloud" not in e.package and "-rt-" not in e.package
        assert e.package == f"linux-image-{e.release}-unsigned"
        assert e.filename.startswith("pool/") and e.filename.endswith(".deb")
        assert len(e.sha256) == 64 and e.size > 10_000_000


def test_packaged_catalog_is_the_one_in_use(catalog, monkeypatch):
    monkeypatch.delenv("HARNESS_CATALOG", raising=False)
    assert load_catalog().entries == catalog.entries


@pytest.mark.skipif(
    shutil.which("apt-cache") is None or shutil.which("dpkg") is None,
    reason="needs apt-cache and dpkg (Debian host) to regenerate the Debian entries",
)
def test_update_catalog_reproduces_the_committed_debian_entries(catalog, tmp_path):
    r = subprocess.run([sys.executable, "ci/update_catalog.py"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tmp_path / "gen.toml").write_text("schema = 1\n" + r.stdout)
    generated = load_catalog(tmp_path / "gen.toml").entries
    committed = tuple(e for e in catalog.entries if e.source == "debian")
    assert generated == committed, "run: python ci/update_catalog.py --write (after apt-get update)"
    check = subprocess.run([sys.executable, "ci/update_catalog.py", "--check"], cwd=REPO)
    assert check.returncode == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to order Debian versions")
def test_update_catalog_names_duplicate_upstream_versions():
    sys.path.insert(0, str(REPO / "ci"))
    try:
        import update_catalog
    finally:
        sys.path.pop(0)
    stanza = (
        "Package: linux-image-6.1.0-{abi}-amd64-unsigned\nVersion: 6.1.192-{rev}\n"
        "Filename: pool/x_{abi}.deb\nSize: 70000000\nSHA256: " + "a" * 64 + "\n\n"
    )
    noise = stanza.replace("-amd64-unsigned", "-cloud-amd64-unsigned")
    text = stanza.format(abi=56, rev=2) + noise.format(abi=56, rev=2) + stanza.format(abi=55, rev=1)
    entries = update_catalog.debian_entries(text)
    assert [(e["name"], e["release"]) for e in entries] == [
        ("6.1.192-1", "6.1.0-55-amd64"),
        ("6.1.192", "6.1.0-56-amd64"),
    ]


# --- resolution rules --------------------------------------------------------


def test_series_resolves_to_newest(catalog):
    newest_12 = max((e for e in catalog.entries if e.series == "6.12"), key=lambda e: e.sort_key())
    assert resolve_spec("6.12", catalog) == newest_12
    assert resolve_spec("6.12", catalog).name == "6.12.117"
    # 6.1.192 beats 6.1.192-1 (same upstream, newer package) and 6.1.190 (by version, not text)
    assert resolve_spec("6.1", catalog).name == "6.1.192"
    assert resolve_spec("6.1", catalog).release == "6.1.0-56-amd64"


def test_version_comparison_is_numeric(tmp_path):
    tables = [
        {"name": n, "series": "6.1", "source": "ubuntu-mainline", "tag": f"v{n}"}
        for n in ("6.1.9", "6.1.10", "6.1.100")
    ]
    cat = load_catalog(write_catalog(tmp_path / "c.toml", tables))
    assert resolve_spec("6.1", cat).name == "6.1.100"


@pytest.mark.parametrize("spec", ["6.12.111", "6.1.192-1", "6.1.170"])
def test_exact_names(catalog, spec):
    assert resolve_spec(spec, catalog).name == spec


@pytest.mark.parametrize("spec", ["6.8", "v6.8", " 6.8 "])
def test_mainline_names(catalog, spec):
    e = resolve_spec(spec, catalog)
    assert (e.name, e.source, e.tag) == ("6.8", "ubuntu-mainline", "v6.8")


def test_unknown_kernel_lists_names_and_how_to_add(catalog):
    with pytest.raises(KernelError) as e:
        resolve_spec("9.99", catalog)
    msg = str(e.value)
    assert msg.startswith("kernel 9.99 is not in the catalog; available: 6.1.170, ")
    for name in ("6.12.117", "6.6", "6.8", "5.10"):
        assert f" {name}," in msg or f" {name};" in msg
    assert "add a [[kernel]] entry to kernels/catalog.toml" in msg
    assert "pass a path to a bzImage or a built kernel tree" in msg


def test_not_a_kernel_image():
    with pytest.raises(KernelError, match=r"/etc/passwd is not a Linux kernel image \(no bzImage header"):
        resolve_spec("/etc/passwd")


def test_directory_that_is_not_a_tree(tmp_path):
    with pytest.raises(KernelError, match="is a directory but not a built kernel tree"):
        resolve_spec(str(tmp_path))


def test_unbuilt_source_tree_says_how_to_build(tmp_path):
    (tmp_path / "Kconfig").write_text("")
    (tmp_path / "arch").mkdir()
    with pytest.raises(KernelError, match="is not built.*python -m harness kernels build"):
        resolve_spec(str(tmp_path))


def test_missing_path(tmp_path):
    with pytest.raises(KernelError, match="does not exist"):
        resolve_spec(str(tmp_path / "nope" / "bzImage"))


def test_local_image_is_used_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    img = fake_bzimage(tmp_path / "bzImage")
    spec = resolve_spec(str(img))
    assert spec == LocalSpec(img, "image", img, "6.9.0-test")
    k = resolve(str(img))
    assert (k.name, k.release, k.source, k.image, k.package) == (
        "6.9.0-test",
        "6.9.0-test",
        "local",
        img,
        None,
    )
    import hashlib

    assert k.sha256 == hashlib.sha256(img.read_bytes()).hexdigest()
    assert not (tmp_path / "cache").exists(), "a local kernel needs no cache entry"


def test_built_tree(tmp_path):
    boot = tmp_path / "linux" / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    fake_bzimage(boot / "bzImage", "6.13.0-rc1+ (dev@box) #3")
    k = resolve(str(tmp_path / "linux"))
    assert (k.name, k.source, k.image) == ("6.13.0-rc1+", "build", boot / "bzImage")


def test_relative_path(tmp_path, monkeypatch):
    fake_bzimage(tmp_path / "vmlinuz")
    monkeypatch.chdir(tmp_path)
    assert resolve_spec("./vmlinuz").image == tmp_path / "vmlinuz"


# --- malformed catalogs --------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("schema = 1\n[[kernel]\n", "not valid TOML"),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n",
            "schema = 1",
        ),
        ("schema = 1\n", "one or more [[kernel]] tables"),
        ("schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\n", "missing tag"),
        (
            "schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='gentoo'\ntag='v6.8'\n",
            "source must be one of",
        ),
        (
            "schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\nsha256='xyz'\n",
            "sha256 must be 64",
        ),
        (
            "schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n"
            "[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n",
            "duplicate name",
        ),
        (
            "schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\nurl='x'\n",
            "unknown field(s) url",
        ),
    ],
)
def test_malformed_catalog(tmp_path, monkeypatch, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    monkeypatch.setenv("HARNESS_CATALOG", str(path))
    with pytest.raises(KernelError) as e:
        resolve("6.8", fetch=False)
    assert expected in str(e.value) and str(path) in str(e.value)


def test_catalog_entry_is_immutable(catalog):
    with pytest.raises(AttributeError):  # a frozen dataclass
        catalog.entries[0].name = "x"  # type: ignore[misc]
    assert isinstance(catalog.entries[0], CatalogEntry)
