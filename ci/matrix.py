#!/usr/bin/env python3
"""The plan job of the kernel matrix: turn the workflow's `kernels` input into the list of catalog kernels to run.

    ci/matrix.py                                  # the newest kernel of every Debian series
    ci/matrix.py --kernels "6.1 6.12"             # the newest of each named series
    ci/matrix.py --kernels 6.1.190,6.12           # an exact catalog version and a series
    ci/matrix.py --kernels 6.1 --every-version    # every catalog kernel of the series
    ci/matrix.py --kernels "debian ubuntu-mainline"   # every series of these catalog sources
    ci/matrix.py --github-output "$GITHUB_OUTPUT"     # also write kernels=<json> and container-options=...

Words of --kernels are what `pytest --kernel` accepts (an exact catalog name
or a series), or the name of a catalog source. The catalog is the harness's
own (`$HARNESS_CATALOG` to use another), so a series added to it shows up
here without a change. Runs in the harness's virtualenv (ci/venv.sh).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from harness.kernels.catalog import SOURCES, Catalog, CatalogEntry, load_catalog, resolve_spec
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
        else:
            try:
                entry = resolve_spec(word, catalog)
            except KernelError:
                raise KernelError(_unknown(word, catalog)) from None
            if not isinstance(entry, CatalogEntry):  # a path: CI jobs need kernels they can fetch
                raise KernelError(_unknown(word, catalog))
            if entry.name in (word, word.removeprefix("v")):  # an exact version is itself
                chosen.append(entry)
                continue
            group = [e for e in catalog.entries if e.series == entry.series and e.source == entry.source]
        if not every_version:  # the newest of each series, as `--kernel SERIES` picks
            group = [resolve_spec(s, catalog) for s in {e.series for e in group}]
        chosen += group
    return ordered({e.name for e in chosen})


def _unknown(word: str, catalog: Catalog) -> str:
    series = ordered({e.series for e in catalog.entries})
    return (
        f"kernel {word!r} is not in the catalog {catalog.path}: give a series "
        f"({', '.join(series)}), an exact version from `python -m harness kernels list`, "
        f"or a source ({', '.join(SOURCES)})"
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
