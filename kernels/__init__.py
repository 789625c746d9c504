"""The kernel catalog and the sources kernels are obtained from (installed as harness.kernels).

    from harness.kernels import resolve, KernelError
    k = resolve("6.12")          # newest 6.12.y in the catalog, fetched once, then cached
    k.name, k.release, k.image   # "6.12.117-1", "6.12.117+deb13-amd64", Path(.../vmlinuz-...)

k.name is always the exact catalog name (an alias such as "6.12" or
"6.12.117" is resolved here), which is what ids and results record.

Environment: HARNESS_CACHE_DIR (cache root), HARNESS_CATALOG (another
catalog file), HARNESS_DEBIAN_MIRROR (Debian archive base URL(s), instead of
the ones the host's apt sources name), HARNESS_DEBIAN_KEYRING (instead of
debian-archive-keyring's), HARNESS_APT_ETC (instead of /etc/apt),
HARNESS_MAINLINE_MIRROR and HARNESS_SNAPSHOT_MIRROR (instead of the
Ubuntu mainline and Debian snapshot archives the catalog's [sources] names).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.versions import kernel_order

from . import local
from .cache import Cache
from .catalog import PREFERENCE, CatalogEntry, LocalSpec, load_catalog, resolve_spec
from .errors import ArchiveUnreachable, KernelError
from .kernel import Kernel
from .source import KernelSource

__all__ = ["Kernel", "KernelError", "Available", "PREFERENCE", "resolve", "available"]


@dataclass(frozen=True)
class Available:
    """One catalog entry for listings; release comes from the cache once fetched."""

    name: str
    series: str
    source: str
    suite: str | None
    release: str | None
    cached: bool
    default: bool  # what --kernel <series> picks


def _source(
    entry: CatalogEntry,
    cache: Cache,
    debian_mirror: str | None,
    debian_keyring: str | None,
    mainline_mirror: str | None,
) -> KernelSource:
    # imported here: a cached kernel resolves without the download machinery (requests,
    # python-debian), about 0.1 s of every run's start-up
    if entry.source == "debian":
        from .debian import DebianSource  # noqa: PLC0415

        return DebianSource(
            debian_mirror, keyring=debian_keyring, cache_root=cache.root, snapshot_mirror=None
        )
    from .mainline import MainlineSource  # noqa: PLC0415

    return MainlineSource(mainline_mirror)


def resolve(
    spec: str,
    *,
    fetch: bool = True,
    progress: bool = True,
    force: bool = False,
    debian_mirror: str | None = None,
    debian_keyring: str | None = None,
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
        hit = cache.current(target)
        if hit is not None:
            return hit.kernel(target.name)
    if not fetch:
        raise KernelError(
            f"kernel {target.name} is not in the cache ({cache.root}) and fetching is disabled; "
            f"fetch it first: python -m harness kernels fetch {target.name}"
        )
    try:
        entry = cache.install(
            target,
            _source(target, cache, debian_mirror, debian_keyring, mainline_mirror),
            force=force,
            progress=progress,
        )
    except ArchiveUnreachable as e:
        raise KernelError(f"{e}\n{_alternatives(cache, target)}") from None
    return entry.kernel(target.name)


def _alternatives(cache: Cache, failed: CatalogEntry) -> str:
    try:
        cached = sorted(
            (e.name for e in load_catalog().entries if e != failed and cache.find(e) is not None),
            key=kernel_order,
        )
    except KernelError:
        cached = []
    others = sorted(
        {e.series for e in load_catalog().entries if e.source != failed.source and e.source == PREFERENCE[0]},
        key=kernel_order,
    )
    parts = []
    if cached:
        parts.append("kernels available without that archive: cached: " + ", ".join(cached))
    else:
        parts.append("no other kernel is available offline: nothing is in the kernel cache")
    if others:
        parts.append(f"the {PREFERENCE[0]} kernels come from another archive: " + ", ".join(others))
    return "; ".join(parts) + "; pick one with --kernel NAME"


def available() -> list[Available]:
    """Every catalog entry, in version order, with whether it is cached and whether a series spec picks it."""
    cache = Cache()
    catalog = load_catalog()
    defaults = set()
    for series in {e.series for e in catalog.entries}:
        picked = resolve_spec(series, catalog)
        if isinstance(picked, CatalogEntry):
            defaults.add(picked.name)
    out = []
    for e in sorted(catalog.entries, key=CatalogEntry.sort_key):
        hit = cache.find(e)
        release = hit.meta["release"] if hit else e.release
        out.append(
            Available(e.name, e.series, e.source, e.suite, release, hit is not None, e.name in defaults)
        )
    return out
