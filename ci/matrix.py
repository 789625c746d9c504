#!/usr/bin/env python3
"""The plan job of the kernel matrix: turn the workflow's `kernels` input into the list of catalog kernels to run.

    ci/matrix.py                                  # the newest kernel of every Debian series
    ci/matrix.py --kernels "6.1 6.12"             # the newest of each named series
    ci/matrix.py --kernels 6.1.190-1,6.12         # an exact catalog name and a series
    ci/matrix.py --kernels 6.1.192                # the newest build of an upstream version
    ci/matrix.py --kernels 6.1 --every-version    # every catalog kernel of the series
    ci/matrix.py --kernels "debian ubuntu-mainline"   # every series of these catalog sources
    ci/matrix.py --github-output "$GITHUB_OUTPUT"     # also write kernels=<json> and container-options=...

Words of --kernels are what `pytest --kernel` accepts (an exact catalog name,
an upstream version or a series), or the name of a catalog source; the
output is always exact names, so each job's ids and results carry them. The
catalog is the harness's own (`$HARNESS_CATALOG` to use another), so a series
added to it shows up here without a change. Runs in the harness's
virtualenv (ci/venv.sh).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from harness.kernels.catalog import SOURCES, Catalog, CatalogEntry, load_catalog, matches
from harness.kernels.errors import KernelError
from harness.versions import kernel_order  # the one version order

DEFAULT = "debian"


def ordered(names: set[str]) -> list[str]:
    """Kernels in version order across series: the one place the matrix is sorted."""
    return sorted(names, key=kernel_order)


def kernels(catalog: Catalog, words: list[str], every_version: bool) -> list[str]:
    """Catalog names for the words; KernelError naming what the catalog has for an unknown word."""
    chosen: list[CatalogEntry] = []
    for word in words or [DEFAULT]:
        if word in SOURCES:
            group = [e for e in catalog.entries if e.source == word]
            if not every_version:  # the newest of each series of that source
                group = [
                    max((e for e in group if e.series == s), key=CatalogEntry.sort_key)
                    for s in {e.series for e in group}
                ]
            chosen += group
            continue
        try:
            group = matches(word, catalog)  # a path matches nothing: CI jobs need kernels they can fetch
        except KernelError:
            raise KernelError(_unknown(word, catalog)) from None
        if not group:
            raise KernelError(_unknown(word, catalog))
        # an exact name is itself; a series or an upstream version is its newest build, or each one
        chosen += group if every_version else group[-1:]
    return ordered({e.name for e in chosen})


def _unknown(word: str, catalog: Catalog) -> str:
    series = ordered({e.series for e in catalog.entries})
    return (
        f"kernel {word!r} is not in the catalog {catalog.path}: give a series "
        f"({', '.join(series)}), an upstream version such as 6.1.192, an exact name from "
        f"`python -m harness kernels list`, or a source ({', '.join(SOURCES)})"
    )


def container_options() -> str:
    """Options for the kernel jobs' container: the KVM device when this runner class has one.

    Docker refuses to start a container whose --device is missing, so the plan
    job (same runs-on as the kernel jobs) looks before the matrix starts."""
    return "--device /dev/kvm" if Path("/dev/kvm").exists() else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default="", help="series, exact versions or sources, by spaces or commas")
    p.add_argument("--every-version", action="store_true", help="every catalog kernel of each series")
    p.add_argument("--github-output", type=Path, metavar="FILE", help="append the outputs to this file")
    args = p.parse_args(argv)
    words = [w for w in re.split(r"[\s,]+", args.kernels) if w]
    try:
        catalog = load_catalog()
        names = kernels(catalog, words, args.every_version)
    except KernelError as e:
        print(f"ci/matrix.py: {e}", file=sys.stderr)
        return 1
    if not names:
        print(
            f"ci/matrix.py: no kernel in the catalog {catalog.path} matches {args.kernels!r}; "
            "the matrix would be empty",
            file=sys.stderr,
        )
        return 1
    text = json.dumps(names)
    print(text)
    if args.github_output:
        with open(args.github_output, "a") as out:
            out.write(f"kernels={text}\ncontainer-options={container_options()}\n")
    print(f"ci/matrix.py: {len(names)} kernel job(s) from {catalog.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
