"""`python -m harness kernels ...`: list the catalog, prefetch kernels into the cache, build a source tree."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import kernels
from harness.kernels import KernelError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "kernels", help="list, fetch and build the kernels tests can boot", description=__doc__
    )
    sub = p.add_subparsers(dest="kernels_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="show the catalog and what is cached")
    ls.set_defaults(func=cmd_list)

    fetch = sub.add_parser(
        "fetch",
        help="download kernels into the cache ahead of a test run",
        description="Fetch each SPEC (a catalog name such as 6.12.111-1.deb12u1, or an alias: 6.12.111, 6.12) "
        "into the cache; a cached kernel is only verified.",
    )
    fetch.add_argument("specs", nargs="+", metavar="SPEC")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.add_argument(
        "--debian-mirror",
        metavar="URL",
        help="Debian archive base URL(s), space-separated, main and security archive (default: "
        "$HARNESS_DEBIAN_MIRROR, else the Debian archives the host's apt sources list)",
    )
    fetch.add_argument(
        "--debian-keyring",
        metavar="FILE",
        help="keyring that signs the archive (default: $HARNESS_DEBIAN_KEYRING, else debian-archive-keyring's)",
    )
    fetch.add_argument(
        "--mainline-mirror",
        metavar="URL",
        help="Ubuntu mainline base URL (default: $HARNESS_MAINLINE_MIRROR, else the catalog's [sources])",
    )
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    fetch.set_defaults(func=cmd_fetch)

    build = sub.add_parser(
        "build",
        help="build a kernel source tree with the BPF config fragment",
        description="Configure and build TREE in place with `vng --build` and "
        "kernels/bpf.config, then check every fragment option stuck. "
        "Afterwards: pytest --kernel TREE.",
    )
    build.add_argument("tree", type=Path, metavar="TREE")
    build.add_argument("--config", type=Path, metavar="FRAGMENT", help="another config fragment")
    build.add_argument("-v", "--verbose", action="store_true")
    build.set_defaults(func=cmd_build)


def _fail(e: KernelError) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 1


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415 - rich only for this table
    from rich.table import Table  # noqa: PLC0415

    try:
        rows = kernels.available()
    except KernelError as e:
        return _fail(e)
    table = Table(
        title="kernels (pytest --kernel NAME; aliases pick the newest match: 6.12.117, or a series such as 6.12: the entry marked in `series`)",
        caption="A series several sources have goes to the first of: "
        + ", ".join(kernels.PREFERENCE)
        + "; choose another with a prefix: mainline:5.10, debian:6.12",
    )
    for col in ("name", "series", "source", "suite", "release", "cached"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            f"{r.series} *" if r.default else r.series,
            r.source,
            r.suite or "-",
            r.release or "-",
            "yes" if r.cached else "no",
        )
    Console().print(table)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    status = 0
    for spec in args.specs:
        try:
            k = kernels.resolve(
                spec,
                force=args.force,
                progress=not args.quiet,
                debian_mirror=args.debian_mirror,
                debian_keyring=args.debian_keyring,
                mainline_mirror=args.mainline_mirror,
            )
        except KernelError as e:
            status = _fail(e)
            continue
        print(
            f"{k.name}: {k.image} ({k.source}, {k.release}; image sha256 {k.sha256[:16]}..., from {k.origin})"
        )
    return status


def cmd_build(args: argparse.Namespace) -> int:
    from harness.kernels import build  # noqa: PLC0415 - only for builds

    try:
        k = build.build(args.tree, fragment=args.config, verbose=args.verbose)
    except KernelError as e:
        return _fail(e)
    print(f"built {k.release}: {k.image}; run the tests with: pytest --kernel {args.tree}")
    return 0
