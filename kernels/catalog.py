"""Load the kernel catalog and turn what a user typed (--kernel SPEC) into a catalog entry or a local path.

Rules, in order (see resolve_spec):
  "6.12.111"  exact catalog name
  "v6.8"      same as "6.8" (the Ubuntu mainline directory spelling)
  "6.12"      newest catalog entry of that series, compared as versions
  "./bzImage", "/src/linux"   a kernel image or a built kernel tree
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from . import bzimage
from .errors import KernelError

SCHEMA = 1
SOURCES = ("debian", "ubuntu-mainline")
CATALOG_ENV = "HARNESS_CATALOG"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")

# Fields each source needs; everything else is optional.
_REQUIRED = {
    "debian": (
        "name",
        "series",
        "source",
        "package",
        "package_version",
        "release",
        "filename",
        "sha256",
        "size",
    ),
    "ubuntu-mainline": ("name", "series", "source", "tag"),
}
_FIELDS = {
    "name",
    "series",
    "source",
    "package",
    "package_version",
    "release",
    "filename",
    "sha256",
    "size",
    "tag",
    "comment",
}


@dataclass(frozen=True)
class CatalogEntry:
    """One pinned kernel. Debian entries carry the exact package and its
    hash; mainline entries carry the archive directory (tag) and are checked
    against that archive's CHECKSUMS file at download time."""

    name: str
    series: str
    source: str
    release: str | None = None
    package: str | None = None
    package_version: str | None = None
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None
    tag: str | None = None

    @property
    def upstream(self) -> str:
        """The upstream version without a disambiguating suffix ("6.1.192-1" -> "6.1.192")."""
        return self.name.split("-", 1)[0]

    def sort_key(self) -> tuple:
        # A suffixed name ("6.1.192-1") is the older package of a pair; the
        # bare name is the newest by construction (see ci/update_catalog.py).
        try:
            v = Version(self.upstream)
        except InvalidVersion:
            v = Version("0")
        return (v, self.name == self.upstream, self.name)


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

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> CatalogEntry | None:
        for e in self.entries:
            if e.name == name:
                return e
        return None


def catalog_path() -> str:
    """The catalog in use: $HARNESS_CATALOG if set, else the packaged kernels/catalog.toml."""
    override = os.environ.get(CATALOG_ENV)
    if override:
        return override
    return str(resources.files("harness.kernels") / "catalog.toml")


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    path = str(path) if path is not None else catalog_path()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise KernelError(
            f"kernel catalog {path} does not exist; unset {CATALOG_ENV} to use the "
            "catalog shipped with the harness, or point it at a catalog file"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise KernelError(f"kernel catalog {path} is not valid TOML: {e}; fix the file") from None
    except OSError as e:
        raise KernelError(f"cannot read kernel catalog {path}: {e.strerror}") from None
    return Catalog(path, tuple(_validate(path, data)))


def _validate(path: str, data: dict) -> list[CatalogEntry]:
    problems: list[str] = []
    if data.get("schema") != SCHEMA:
        problems.append(f"expected `schema = {SCHEMA}` at the top, found {data.get('schema')!r}")
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
        wrong = [k for k, v in t.items() if k != "size" and not isinstance(v, str)]
        if "size" in t and (not isinstance(t["size"], int) or t["size"] <= 0):
            wrong.append("size")
        if wrong:
            problems.append(
                f"{where}: wrong type for {', '.join(wrong)} (size is a positive integer, the rest strings)"
            )
            continue
        if not _NAME.match(t["name"]):
            problems.append(
                f"{where}: name must start with a digit and contain only letters, digits and . + -"
            )
        if t["name"] in seen:
            problems.append(f"{where}: duplicate name {t['name']!r}")
        seen.add(t["name"])
        if "sha256" in t and not _SHA256.match(t["sha256"]):
            problems.append(f"{where}: sha256 must be 64 lowercase hex digits")
        t = {k: v for k, v in t.items() if k != "comment"}
        entries.append(CatalogEntry(**t))
    if problems:
        raise KernelError(
            f"kernel catalog {path} is malformed:\n  "
            + "\n  ".join(problems)
            + "\nfix these entries (see the comments at the top of kernels/catalog.toml)"
        )
    return entries


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "~")) or os.sep in spec


def _unknown(spec: str, catalog: Catalog) -> KernelError:
    names = ", ".join(e.name for e in sorted(catalog.entries, key=lambda e: (e.source, e.sort_key())))
    return KernelError(
        f"kernel {spec} is not in the catalog; available: {names}; add a [[kernel]] "
        f"entry to kernels/catalog.toml, or pass a path to a bzImage or a built kernel tree"
    )


def resolve_spec(spec: str, catalog: Catalog | None = None) -> CatalogEntry | LocalSpec:
    """Map a --kernel value to a catalog entry or a local kernel; raise KernelError otherwise."""
    spec = spec.strip()
    if not spec:
        raise KernelError("empty kernel spec; pass a catalog name such as 6.12 or a path")
    if _looks_like_path(spec):
        return local_spec(Path(spec).expanduser())
    catalog = catalog or load_catalog()
    name = spec[1:] if spec[:1] == "v" and spec[1:2].isdigit() else spec
    exact = catalog.get(name)
    if exact:
        return exact
    series = [e for e in catalog.entries if e.series == name]
    if series:
        return max(series, key=CatalogEntry.sort_key)
    if os.path.exists(spec):
        return local_spec(Path(spec))
    raise _unknown(spec, catalog)


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
