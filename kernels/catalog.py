"""Load the kernel catalog and turn what a user typed (--kernel SPEC) into a catalog entry or a local path.

A catalog name never changes meaning: a Debian entry is named by its package
version ("6.1.192-3", "6.12.117-1.deb12u1", "7.3.4-1.bpo13+1"; "~" is written
"."), an Ubuntu mainline entry by its tag ("6.8"). Everything shorter is an
alias, resolved now to the newest entry it matches. Rules, in order (see
resolve_spec and matches):
  "debian:6.12", "mainline:6.8"   the rest of the spec, among that source's entries only
  "v6.8"      same as "6.8" (the Ubuntu mainline directory spelling)
  "6.12"      newest entry of that series, compared as versions (harness.versions);
              when several sources have the series, the first in PREFERENCE wins
  "6.1.192-3" exact catalog name ("6.12.117-1~deb12u1", Debian's spelling, works too)
  "6.1.192"   newest build of that upstream version
  "./bzImage", "/src/linux"   a kernel image or a built kernel tree

The catalog's [sources] table holds the default URLs of the archives that are
not the host's apt sources (SOURCE_ENV names the variable that overrides each).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from harness.versions import debian_name, kernel_order, name_revision

from . import bzimage
from .errors import KernelError

SCHEMA = 2
SOURCES = ("debian", "ubuntu-mainline")
# Which source a series spec ("5.10", "6.12") takes when more than one has
# the series: Debian first, because its packages are checked against the
# archive's signed indexes and its archive is reachable wherever apt works;
# Ubuntu mainline builds are checked against an unsigned CHECKSUMS file.
# Override per spec with a prefix: "mainline:6.8", "debian:6.12".
PREFERENCE = ("debian", "ubuntu-mainline")
PREFIXES = {"debian": "debian", "mainline": "ubuntu-mainline", "ubuntu-mainline": "ubuntu-mainline"}
CATALOG_ENV = "HARNESS_CATALOG"
# [sources] keys -> the environment variable that overrides each URL.
SOURCE_ENV = {"mainline": "HARNESS_MAINLINE_MIRROR", "snapshot": "HARNESS_SNAPSHOT_MIRROR"}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")

# Fields each source needs; everything else is optional.
_REQUIRED = {
    "debian": ("name", "series", "source", "release", "suite", "debs"),
    "ubuntu-mainline": ("name", "series", "source", "tag"),
}
_FIELDS = {"name", "series", "source", "release", "suite", "debs", "tag", "comment"}
_DEB_FIELDS = ("package", "version", "filename", "sha256", "size")


@dataclass(frozen=True)
class DebPin:
    """One .deb of a Debian kernel, exactly as the suite's signed Packages index listed it."""

    package: str
    version: str
    filename: str  # path under the archive root
    sha256: str
    size: int


@dataclass(frozen=True)
class CatalogEntry:
    """One pinned kernel. Debian entries carry the suite and every .deb with
    its hash (one linux-image-*-unsigned for 5.10 to 6.12; linux-binary-*,
    linux-modules-* and linux-base-* for 7.x); mainline entries carry the
    archive directory (tag) and are checked against that archive's CHECKSUMS
    file at download time."""

    name: str
    series: str
    source: str
    release: str | None = None
    suite: str | None = None
    debs: tuple[DebPin, ...] = ()
    tag: str | None = None

    @property
    def package(self) -> str | None:
        """The package that names the kernel (the first .deb), or None."""
        return self.debs[0].package if self.debs else None

    @property
    def upstream(self) -> str:
        """The upstream version: "6.1.192" for "6.1.192-3", "6.8" for "6.8"."""
        return self.name.partition("-")[0]

    def sort_key(self) -> tuple:
        """Version order; for Debian entries exactly dpkg's (the name carries the package version)."""
        return kernel_order(self.name)


@dataclass(frozen=True)
class LocalSpec:
    """A kernel given as a path. kind "image": a bzImage/vmlinuz file;
    kind "tree": a built kernel source tree (image at arch/x86/boot/bzImage)."""

    path: Path
    kind: Literal["image", "tree"]
    image: Path
    release: str


@dataclass(frozen=True)
class Catalog:
    path: str
    entries: tuple[CatalogEntry, ...]
    sources: dict[str, str] = field(default_factory=dict)  # [sources]: key of SOURCE_ENV -> URL

    def get(self, name: str) -> CatalogEntry | None:
        for e in self.entries:
            if e.name == name:
                return e
        return None

    def url(self, key: str, explicit: str | None = None) -> str:
        """Base URL of an archive (a key of SOURCE_ENV), ending in "/": explicit, else its
        environment variable, else the catalog's [sources]."""
        url = explicit or os.environ.get(SOURCE_ENV[key]) or self.sources.get(key)
        if not url:
            raise KernelError(
                f"no URL for the {key} archive: the catalog {self.path} has no `{key}` in its "
                f"[sources] table; set {SOURCE_ENV[key]} or add it to the catalog"
            )
        return url.rstrip("/") + "/"


def packaged_path() -> str:
    return str(resources.files("harness.kernels") / "catalog.toml")


def catalog_path() -> str:
    """The catalog in use: $HARNESS_CATALOG if set, else the packaged kernels/catalog.toml."""
    return os.environ.get(CATALOG_ENV) or packaged_path()


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise KernelError(
            f"kernel catalog {path} does not exist; unset {CATALOG_ENV} to use the "
            "catalog shipped with the harness, or point it at a catalog file"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise KernelError(f"kernel catalog {path} is not valid TOML: {e}; fix the file") from None
    except OSError as e:
        raise KernelError(f"cannot read kernel catalog {path}: {e.strerror}") from None


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """The catalog at path (default: catalog_path()); another catalog than the packaged one
    takes the packaged [sources] for the URLs it does not set itself."""
    path = str(path) if path is not None else catalog_path()
    data = _read(path)
    entries, sources = _validate(path, data)
    if os.path.abspath(path) != os.path.abspath(packaged_path()):
        sources = {**_sources(_read(packaged_path()), []), **sources}
    return Catalog(path, tuple(entries), sources)


def _sources(data: dict, problems: list[str]) -> dict[str, str]:
    table = data.get("sources", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) and v for v in table.values()):
        problems.append("[sources] must be a table of URLs (strings)")
        return {}
    unknown = sorted(set(table) - set(SOURCE_ENV))
    if unknown:
        problems.append(f"[sources]: unknown key(s) {', '.join(unknown)}; known: {', '.join(SOURCE_ENV)}")
    return {k: v for k, v in table.items() if k in SOURCE_ENV}


def _validate(path: str, data: dict) -> tuple[list[CatalogEntry], dict[str, str]]:
    problems: list[str] = []
    sources = _sources(data, problems)
    if data.get("schema") != SCHEMA:
        problems.append(
            f"expected `schema = {SCHEMA}` at the top, found {data.get('schema')!r} (schema 2: Debian "
            "entries list their packages in `debs`; regenerate them with ci/update_catalog.py --write)"
        )
    tables = data.get("kernel", [])
    if not isinstance(tables, list) or not tables:
        problems.append("expected one or more [[kernel]] tables")
        tables = []
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for i, t in enumerate(tables, 1):
        where = f"[[kernel]] #{i}" + (f" ({t.get('name')!r})" if isinstance(t, dict) and "name" in t else "")
        if not isinstance(t, dict):
            problems.append(f"{where}: not a table")
            continue
        source = t.get("source")
        if source not in SOURCES:
            problems.append(f"{where}: source must be one of {', '.join(SOURCES)}, found {source!r}")
            continue
        missing = [k for k in _REQUIRED[source] if k not in t]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        unknown = sorted(set(t) - _FIELDS)
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
            continue
        wrong = [k for k, v in t.items() if k != "debs" and not isinstance(v, str)]
        if wrong:
            problems.append(f"{where}: wrong type for {', '.join(wrong)} (strings expected)")
            continue
        debs = _debs(where, t["debs"], problems) if "debs" in t else ()
        if not _NAME.match(t["name"]):
            problems.append(
                f"{where}: name must start with a digit and contain only letters, digits and . + -"
            )
        elif debs:
            _check_debian_name(where, t["name"], debs, problems)
        if t["name"] in seen:
            problems.append(f"{where}: duplicate name {t['name']!r}")
        seen.add(t["name"])
        fields = {k: v for k, v in t.items() if k not in ("comment", "debs")}
        entries.append(CatalogEntry(**fields, debs=debs))
    if problems:
        raise KernelError(
            f"kernel catalog {path} is malformed:\n  "
            + "\n  ".join(problems)
            + "\nfix these entries (see the comments at the top of kernels/catalog.toml)"
        )
    return entries, sources


def _check_debian_name(where: str, name: str, debs: tuple[DebPin, ...], problems: list[str]) -> None:
    """A Debian entry is named by its package version, so that the name can never mean another build."""
    versions = {d.version for d in debs}
    version = debs[0].version
    if len(versions) > 1:
        problems.append(f"{where}: its packages have different versions ({', '.join(sorted(versions))})")
    elif name != debian_name(version):
        problems.append(
            f"{where}: a Debian entry is named by its package version with '~' written '.': "
            f"{debian_name(version)!r} for {version}"
        )
    elif name_revision(name) != version.partition("-")[2]:
        problems.append(
            f"{where}: version {version} has a '.' before a letter in its revision, which the name "
            "form reserves for '~'; this build cannot be named"
        )


def _debs(where: str, value, problems: list[str]) -> tuple[DebPin, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: debs must be a non-empty array of tables")
        return ()
    out = []
    for j, d in enumerate(value, 1):
        here = f"{where}: debs #{j}"
        if not isinstance(d, dict) or set(d) != set(_DEB_FIELDS):
            problems.append(f"{here}: needs exactly the fields {', '.join(_DEB_FIELDS)}")
            continue
        if (
            not isinstance(d["size"], int)
            or d["size"] <= 0
            or not all(isinstance(d[k], str) for k in _DEB_FIELDS if k != "size")
        ):
            problems.append(f"{here}: size is a positive integer, the rest strings")
            continue
        if not _SHA256.match(d["sha256"]):
            problems.append(f"{here}: sha256 must be 64 lowercase hex digits")
            continue
        out.append(DebPin(**d))
    return tuple(out)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "~")) or os.sep in spec


def _unknown(spec: str, catalog: Catalog) -> KernelError:
    series = sorted({e.series for e in catalog.entries}, key=kernel_order)
    newest = [resolve_spec(s, catalog) for s in series]
    examples = ", ".join(e.name for e in newest if isinstance(e, CatalogEntry) and e.source == PREFERENCE[0])
    return KernelError(
        f"kernel {spec} is not in the catalog {catalog.path}; it has the series {', '.join(series)} "
        f"(each picks its newest build) and exact builds such as {examples}; "
        "`python -m harness kernels list` shows every one. Add a [[kernel]] entry to "
        "kernels/catalog.toml, or pass a path to a bzImage or a built kernel tree"
    )


def split_source(spec: str) -> tuple[str | None, str]:
    """ "mainline:6.8" -> ("ubuntu-mainline", "6.8"); "6.8" -> (None, "6.8")."""
    prefix, sep, rest = spec.partition(":")
    if not sep:
        return None, spec
    if prefix not in PREFIXES:
        raise KernelError(
            f"unknown kernel source {prefix!r} in {spec!r}; use one of "
            f"{', '.join(p + ':' for p in PREFIXES)} followed by a name or series, e.g. debian:6.12"
        )
    return PREFIXES[prefix], rest


def matches(spec: str, catalog: Catalog) -> list[CatalogEntry]:
    """The entries a catalog spec selects, oldest first: a series', an exact name's (one),
    or an upstream version's builds; [] for none."""
    source, rest = split_source(spec.strip())
    name = rest[1:] if rest[:1] == "v" and rest[1:2].isdigit() else rest
    name = name.replace("~", ".")  # Debian's spelling of a version: 6.12.117-1~deb12u1
    entries = [e for e in catalog.entries if source in (None, e.source)]
    # A series first: "5.10" is the newest Debian 5.10.y, even though the
    # mainline build of v5.10 is also named "5.10" (reach it as mainline:5.10).
    for test in (
        lambda e: e.series == name,
        lambda e: e.name == name,
        lambda e: e.upstream == name,
    ):
        for preferred in PREFERENCE:
            found = [e for e in entries if e.source == preferred and test(e)]
            if found:
                return sorted(found, key=CatalogEntry.sort_key)
    return []


def resolve_spec(spec: str, catalog: Catalog | None = None) -> CatalogEntry | LocalSpec:
    """Map a --kernel value to a catalog entry (the newest it matches) or a local kernel; raise KernelError otherwise."""
    spec = spec.strip()
    if not spec:
        raise KernelError("empty kernel spec; pass a catalog name such as 6.12 or a path")
    if _looks_like_path(spec):
        return local_spec(Path(spec).expanduser())
    catalog = catalog or load_catalog()
    source, _ = split_source(spec)
    found = matches(spec, catalog)
    if found:
        return found[-1]
    if source is None and os.path.exists(spec):
        return local_spec(Path(spec))
    raise _unknown(spec, catalog)


def spec_for(entry: CatalogEntry, catalog: Catalog) -> str:
    """The shortest --kernel value that selects exactly this entry: its name, or
    "mainline:5.10" where the bare name is also a series another source wins."""
    if resolve_spec(entry.name, catalog) == entry:
        return entry.name
    prefix = next(p for p, source in PREFIXES.items() if source == entry.source)
    return f"{prefix}:{entry.name}"


def local_spec(path: Path) -> LocalSpec:
    """Check that a path is a kernel image or a built kernel tree."""
    path = path.absolute()
    if path.is_dir():
        image = path / "arch" / "x86" / "boot" / "bzImage"
        if image.is_file():
            return LocalSpec(path, "tree", image, bzimage.read_release(image))
        if (path / "Kconfig").is_file() and (path / "arch").is_dir():
            raise KernelError(
                f"{path} is a kernel source tree but is not built (no arch/x86/boot/bzImage); "
                f"build it first: python -m harness kernels build {path}"
            )
        raise KernelError(
            f"{path} is a directory but not a built kernel tree (expected arch/x86/boot/bzImage "
            "inside); pass a bzImage file, a built tree, or a catalog name"
        )
    if not path.exists():
        raise KernelError(
            f"{path} does not exist; pass a bzImage/vmlinuz file, a built kernel tree, or a catalog name"
        )
    return LocalSpec(path, "image", path, bzimage.read_release(path))
