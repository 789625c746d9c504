"""The kernel catalog: it loads, it matches the archive's signed indexes, and specs resolve by the documented rules."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from harness.kernels import KernelError, resolve
from harness.kernels.catalog import PREFERENCE, CatalogEntry, LocalSpec, load_catalog, resolve_spec
from harness.versions import kernel_order
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
    assert {e.series for e in debian} == {"5.10", "6.1", "6.12", "7.2", "7.3"}
    assert sorted(e.name for e in mainline) == sorted(MAINLINE)
    for e in mainline:
        assert e.tag == f"v{e.name}" and e.debs == ()  # verified against CHECKSUMS instead
    for e in debian:
        assert e.suite in _update_catalog().SUITES, e.name
        assert "cloud" not in e.release and "-rt-" not in e.release and e.release.endswith("-amd64")
        kinds = [p.package.removesuffix(f"{e.release}-unsigned").removesuffix(e.release) for p in e.debs]
        if e.series.startswith("7."):
            assert kinds == ["linux-binary-", "linux-modules-", "linux-base-"], e.name
        else:
            assert kinds == ["linux-image-"] and e.debs[0].package.endswith("-unsigned"), e.name
        for p in e.debs:
            assert p.filename.startswith("pool/") and p.filename.endswith(".deb") and len(p.sha256) == 64
            assert len({d.version for d in e.debs}) == 1
        assert sum(p.size for p in e.debs) > 50_000_000


def test_packaged_catalog_is_the_one_in_use(catalog, monkeypatch):
    monkeypatch.delenv("HARNESS_CATALOG", raising=False)
    assert load_catalog().entries == catalog.entries


def _update_catalog():
    sys.path.insert(0, str(REPO / "ci"))
    try:
        import update_catalog
    finally:
        sys.path.pop(0)
    return update_catalog


@pytest.mark.slow  # a local archive's signed indexes
def test_update_catalog_agrees_with_the_archives_signed_indexes(catalog):
    """Every committed pin the archive still carries is exactly what its signed index says.

    The archive moves on: new builds of an upstream version (6.1.192-3 after -2)
    get entries of their own, and sid and the backports drop old versions
    (those come from the snapshot archive). Neither makes the committed catalog
    wrong; a pin whose file, hash or size differs from the signed index for the
    same package and version does, and so does a build the archive lists under
    another name than the committed entry's."""
    uc = _update_catalog()
    try:
        live_tables = uc.collect(None)
    except KernelError as e:
        if "no Debian archive" in str(e) or "unreachable" in str(e):
            pytest.skip(f"needs a Debian archive to read: {e}")
        raise
    live = {(p["package"], p["version"]): t for t in live_tables for p in t["debs"]}
    committed = [e for e in catalog.entries if e.source == "debian"]
    carried = [e for e in committed if all((p.package, p.version) in live for p in e.debs)]
    assert carried, "the archive carries none of the committed kernels: python ci/update_catalog.py --write"
    for e in carried:
        t = live[(e.debs[0].package, e.debs[0].version)]
        assert t["name"] == e.name, f"{e.name}: the archive's build would be named {t['name']}"
        assert [dict(vars(p)) for p in e.debs] == t["debs"], f"{e.name}: differs from the signed index"
        assert (t["release"], t["series"]) == (e.release, e.series)
        assert e.suite in t["suites"], f"{e.name}: {e.suite} no longer lists it; it is in {t['suites']}"
    # and the committed catalog is what --write makes of itself and the archive, but for new builds
    merged = uc.merge(uc.committed_entries(CATALOG), live_tables)
    assert [t for t in merged if t["name"] in {e.name for e in committed}] == uc.committed_entries(CATALOG)


def test_update_catalog_names_builds_and_skips_incomplete_or_rc_packages():
    uc = _update_catalog()

    def stanza(package, version, size=60_000_000):
        return {
            "Package": package,
            "Version": version,
            "Filename": f"pool/{package}_{version}.deb",
            "SHA256": "a" * 64,
            "Size": str(size),
        }

    class Index:
        def __init__(self, stanzas):
            self.packages = {}
            for st in stanzas:
                self.packages.setdefault(st["Package"], []).append(st)

        def find(self, package, version):
            return next((s for s in self.packages.get(package, []) if s["Version"] == version), None)

    bookworm = Index(
        [
            stanza("linux-image-6.1.0-56-amd64-unsigned", "6.1.192-2"),
            stanza("linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2"),
            stanza("linux-image-6.1.0-55-amd64-unsigned", "6.1.192-1"),
            stanza("linux-image-6.12.117+deb12-amd64-unsigned", "6.12.117-1~deb12u1"),
        ]
    )
    trixie = Index([stanza("linux-image-6.12.117+deb13-amd64-unsigned", "6.12.117-1")])
    backports = Index(
        [
            *(
                stanza(f"linux-{k}-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1")
                for k in ("binary", "modules", "base")
            ),
            stanza("linux-binary-7.1.3+deb13-amd64", "7.1.3-1~bpo13+1"),  # no modules: not bootable
        ]
    )
    experimental = Index(
        [
            *(stanza(f"linux-{k}-7.3-amd64", "7.3~rc7-1~exp1") for k in ("binary", "modules", "base")),
        ]
    )
    rows = (
        uc.suite_rows("bookworm-security", bookworm, ("6.1", "6.12"))
        + uc.suite_rows("trixie", trixie, ("6.12",))
        + uc.suite_rows("trixie-backports", backports, ("7.1", "7.3"))
        + uc.suite_rows("experimental", experimental, ("7.3",))
    )
    got = [(e["name"], e["suite"], e["release"], len(e["debs"])) for e in uc.entries(rows)]
    assert got == [
        ("6.1.192-1", "bookworm-security", "6.1.0-55-amd64", 1),
        ("6.1.192-2", "bookworm-security", "6.1.0-56-amd64", 1),
        ("6.12.117-1.deb12u1", "bookworm-security", "6.12.117+deb12-amd64", 1),
        ("6.12.117-1", "trixie", "6.12.117+deb13-amd64", 1),
        ("7.3.4-1.bpo13+1", "trixie-backports", "7.3.4+deb13-amd64", 3),
    ]


def _pin(package, version, digit="a"):
    return {
        "package": package,
        "version": version,
        "filename": f"pool/main/l/linux/{package}_{version}_amd64.deb",
        "sha256": digit * 64,
        "size": 60_000_000,
    }


def _live(version, abi, suite="bookworm-security", digit="a"):
    package = f"linux-image-6.1.0-{abi}-amd64-unsigned"
    return {
        "upstream": version.split("-")[0],
        "suite": suite,
        "release": f"6.1.0-{abi}-amd64",
        "debs": [_pin(package, version, digit)],
    }


def test_a_refresh_keeps_every_name_and_adds_new_builds(tmp_path, monkeypatch):
    """The archive moves from 6.1.192-2 to -3 and drops -1: -1 and -2 keep their names and pins,
    -3 gets its own entry, and the whole file round-trips through --write."""
    uc = _update_catalog()
    before = uc.entries([_live("6.1.192-1", 55), _live("6.1.192-2", 56)])
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        "schema = 2\n\n" + uc.render(before) + '\n[[kernel]]\nname = "6.8"\nseries = "6.8"\n'
        'source = "ubuntu-mainline"\ntag = "v6.8"\n'
    )
    newer = uc.entries([_live("6.1.192-2", 56), _live("6.1.192-3", 57)])  # -1 dropped, -3 new

    monkeypatch.setattr(uc, "CATALOG", catalog)
    monkeypatch.setattr(uc, "collect", lambda mirror: newer)
    assert uc.main(["--check"]) == 1
    assert uc.main(["--write"]) == 0
    after = load_catalog(catalog)
    names = [e.name for e in after.entries]
    assert names == ["6.1.192-1", "6.1.192-2", "6.1.192-3", "6.8"]
    assert [e.release for e in after.entries[:3]] == ["6.1.0-55-amd64", "6.1.0-56-amd64", "6.1.0-57-amd64"]
    assert resolve_spec("6.1.192", after).name == "6.1.192-3"
    assert resolve_spec("6.1.192-2", after).release == "6.1.0-56-amd64"  # what it always meant
    assert uc.main(["--check"]) == 0  # nothing more to add
    text = catalog.read_text()
    assert uc.main(["--write"]) == 0 and catalog.read_text() == text


def test_a_refresh_that_would_re_pin_a_name_writes_nothing(tmp_path, monkeypatch, capsys):
    uc = _update_catalog()
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("schema = 2\n\n" + uc.render(uc.entries([_live("6.1.192-2", 56)])))
    text = catalog.read_text()
    monkeypatch.setattr(uc, "CATALOG", catalog)
    monkeypatch.setattr(uc, "collect", lambda mirror: uc.entries([_live("6.1.192-2", 56, digit="b")]))
    assert uc.main(["--write"]) == 1
    assert catalog.read_text() == text
    err = capsys.readouterr().err
    assert (
        "6.1.192-2: the signed index lists" in err
        and "never re-pins a name" in err
        and "nothing was written" in err
    )


def test_a_build_the_archive_moved_follows_to_its_new_suite():
    uc = _update_catalog()
    committed = uc.entries([_live("6.1.192-3", 57, suite="bookworm-security")])
    for t in committed:
        t.pop("suites")
    moved = uc.entries([_live("6.1.192-3", 57, suite="bookworm")])
    assert [t["suite"] for t in uc.merge(committed, moved)] == ["bookworm"]
    both = uc.entries([_live("6.1.192-3", 57, suite="bookworm"), _live("6.1.192-3", 57)])
    assert [t["suite"] for t in uc.merge(committed, both)] == ["bookworm-security"]


# --- resolution rules --------------------------------------------------------


def test_series_resolves_to_newest(catalog):
    for series in ("5.10", "6.1", "6.12", "7.2", "7.3"):
        debian = [e for e in catalog.entries if e.series == series and e.source == "debian"]
        assert resolve_spec(series, catalog) == max(debian, key=lambda e: kernel_order(e.name))
    # 6.1.192-3 beats 6.1.192-2 (same upstream, newer package) and 6.1.190-1 (by version, not text)
    assert resolve_spec("6.1", catalog).name == "6.1.192-3"
    assert resolve_spec("6.1", catalog).release == "6.1.0-57-amd64"


def test_every_debian_entry_is_named_by_its_package_version(catalog):
    for e in catalog.entries:
        if e.source == "debian":
            assert e.name == e.debs[0].version.replace("~", "."), e.name
            assert "-" in e.name and e.upstream == e.debs[0].version.split("-")[0]


def test_names_sort_as_debian_orders_the_package_versions(catalog):
    from debian.debian_support import Version

    debian = [e for e in catalog.entries if e.source == "debian"]
    by_name = sorted(debian, key=CatalogEntry.sort_key)
    assert by_name == sorted(
        debian, key=lambda e: (tuple(map(int, e.upstream.split("."))), Version(e.debs[0].version))
    )


@pytest.mark.parametrize(
    "alias,exact",
    [
        ("6.1.192", "6.1.192-3"),  # what "6.1.192" last meant, now an alias of the newest build
        ("6.12.117", "6.12.117-1"),  # trixie's -1 is newer than bookworm's -1~deb12u1
        ("6.12.111", "6.12.111-1.deb12u1"),
        ("5.10.262", "5.10.262-1"),
        ("7.3.4", "7.3.4-1.bpo13+1"),
        ("debian:7.2.13", "7.2.13-1"),
        ("6.12.117-1~deb12u1", "6.12.117-1.deb12u1"),  # Debian's own spelling
        ("7.3.4-1~bpo13+1", "7.3.4-1.bpo13+1"),
    ],
)
def test_short_forms_are_aliases_of_the_newest_exact_entry(catalog, alias, exact):
    assert resolve_spec(alias, catalog).name == exact


def test_a_debian_name_that_is_not_its_version_is_refused(tmp_path):
    from tests.kernels.testlib import debian_table

    for name, why in [
        ("5.10.262", "named by its package version"),
        ("5.10.262-2", "'5.10.262-1' for 5.10.262-1"),
    ]:
        with pytest.raises(KernelError, match=why):
            load_catalog(write_catalog(tmp_path / "c.toml", [debian_table(name=name)]))


def test_series_both_sources_have_goes_to_debian_unless_prefixed(catalog):
    assert PREFERENCE[0] == "debian"
    e = resolve_spec("5.10", catalog)
    assert (e.source, e.series) == ("debian", "5.10") and e.name != "5.10"
    assert resolve_spec("mainline:5.10", catalog).source == "ubuntu-mainline"
    assert resolve_spec("mainline:v6.8", catalog).tag == "v6.8"
    assert resolve_spec("debian:6.12", catalog) == resolve_spec("6.12", catalog)
    with pytest.raises(KernelError, match="not in the catalog"):
        resolve_spec("debian:6.8", catalog)
    with pytest.raises(KernelError, match="unknown kernel source 'gentoo'.*debian:, mainline:"):
        resolve_spec("gentoo:6.8", catalog)


def test_version_comparison_is_numeric(tmp_path):
    tables = [
        {"name": n, "series": "6.1", "source": "ubuntu-mainline", "tag": f"v{n}"}
        for n in ("6.1.9", "6.1.10", "6.1.100")
    ]
    cat = load_catalog(write_catalog(tmp_path / "c.toml", tables))
    assert resolve_spec("6.1", cat).name == "6.1.100"


@pytest.mark.parametrize(
    "spec",
    ["6.12.111-1.deb12u1", "6.1.192-1", "6.1.170-3", "6.12.117-1.deb12u1", "7.2.6-1.bpo13+1", "7.2.13-1"],
)
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
    assert msg.startswith(
        f"kernel 9.99 is not in the catalog {catalog.path}; it has the series 5.10, 5.15, 6.1, "
    )
    for name in ("6.12.117-1", "7.3.4-1.bpo13+1", "7.2.13-1"):
        assert f" {name}," in msg or f" {name};" in msg
    assert "python -m harness kernels list" in msg
    assert "Add a [[kernel]] entry to kernels/catalog.toml" in msg
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
        ("schema = 2\n[[kernel]\n", "not valid TOML"),
        (
            "schema = 1\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n",
            "expected `schema = 2` at the top, found 1",
        ),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='debian'\nsuite='sid'\nrelease='x'\n",
            "missing debs",
        ),
        ("schema = 2\n", "one or more [[kernel]] tables"),
        ("schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\n", "missing tag"),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='gentoo'\ntag='v6.8'\n",
            "source must be one of",
        ),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='debian'\nsuite='sid'\nrelease='x'\n"
            "[[kernel.debs]]\npackage='p'\nversion='1'\nfilename='pool/p.deb'\nsha256='xyz'\nsize=1\n",
            "sha256 must be 64",
        ),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n"
            "[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\n",
            "duplicate name",
        ),
        (
            "schema = 2\n[[kernel]]\nname='6.8'\nseries='6.8'\nsource='ubuntu-mainline'\ntag='v6.8'\nurl='x'\n",
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
