"""The kernel catalog and the sources kernels are obtained from (installed as harness.kernels).

    from harness.kernels import resolve, KernelError
    k = resolve("6.12")          # newest 6.12.y in the catalog, fetched once, then cached
    k.name, k.release, k.image   # "6.12.117", "6.12.117+deb12-amd64", Path(.../vmlinuz-...)

Environment: HARNESS_CACHE_DIR (cache root), HARNESS_CATALOG (another
catalog file), HARNESS_DEBIAN_MIRROR (HTTP mirror(s) when apt cannot fetch),
HARNESS_MAINLINE_MIRROR (instead of https://kernel.ubuntu.com/mainline/).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import apt, local
from .cache import Cache
from .catalog import CatalogEntry, LocalSpec, load_catalog, resolve_spec
from .debian import DebianSource
from .errors import ArchiveUnreachable, KernelError
from .kernel import Kernel
from .mainline import MainlineSource
from .source import KernelSource

__all__ = ["Kernel", "KernelError", "Available", "resolve", "available"]


@dataclass(frozen=True)
class Available:
    """One catalog entry for listings; release comes from the cache once fetched."""

    name: str
    series: str
    source: str
    release: str | None
    cached: bool


def _source(entry: CatalogEntry, debian_mirror: str | None, mainline_mirror: str | None) -> KernelSource:
    if entry.source == "debian":
        return DebianSource(debian_mirror)
    return MainlineSource(mainline_mirror)


def resolve(
    spec: str,
    *,
    fetch: bool = True,
    progress: bool = True,
    force: bool = False,
    debian_mirror: str | None = None,
    mainline_mirror: str | None = None,
) -> Kernel:
    """Turn a --kernel value into a bootable Kernel, fetching it into the cache if needed.

    fetch=False: only the cache (or a path) is used; a missing kernel is an
    error that says how to fetch it. force=True: fetch again even if cached.
    A cached kernel needs no network. Every failure is a KernelError.
    """
    target = resolve_spec(spec)
    if isinstance(target, LocalSpec):
        return local.kernel(target)
    cache = Cache()
    if not force:
        hit = cache.verified(target.name)
        if hit is not None:
            return hit.kernel()
    if not fetch:
        raise KernelError(
            f"kernel {target.name} is not in the cache ({cache.root}) and fetching is disabled; "
            f"fetch it first: python -m harness kernels fetch {target.name}"
        )
    try:
        entry = cache.install(
            target, _source(target, debian_mirror, mainline_mirror), force=force, progress=progress
        )
    except ArchiveUnreachable as e:
        raise KernelError(f"{e}\n{_alternatives(cache, exclude=target.name)}") from None
    return entry.kernel()


def _alternatives(cache: Cache, exclude: str) -> str:
    catalog = load_catalog()
    try:
        cached = sorted(cache.names() - {exclude})
    except KernelError:
        cached = []
    debian = [e for e in catalog.entries if e.source == "debian"]
    via_apt = apt.known((e.package, e.package_version) for e in debian)
    aptable = [e.name for e in debian if (e.package, e.package_version) in via_apt and e.name not in cached]
    parts = []
    if cached:
        parts.append("cached: " + ", ".join(cached))
    if aptable:
        parts.append("Debian kernels through this host's apt: " + ", ".join(aptable))
    if not parts:
        return "no other kernel is available offline: nothing is cached and apt lists none of the catalog's Debian kernels"
    return "kernels available without that archive: " + "; ".join(parts) + "; pick one with --kernel NAME"


def available() -> list[Available]:
    """Every catalog entry, in catalog order, with whether it is in the cache."""
    cache = Cache()
    out = []
    for e in load_catalog().entries:
        hit = cache.lookup(e.name)
        out.append(
            Available(e.name, e.series, e.source, hit.meta["release"] if hit else e.release, hit is not None)
        )
    return out
