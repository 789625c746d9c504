#!/usr/bin/env python3
"""Print the CI kernel matrix, generated from kernels/catalog.toml, as JSON for GitHub Actions' fromJSON.

    ci/matrix.py                          # newest Debian kernel of each series: ["6.1.192", "6.12.117"]
    ci/matrix.py --series 6.12            # only that series
    ci/matrix.py --series 6.1,6.12 --all  # every catalog kernel of those series
    ci/matrix.py --source any             # Ubuntu mainline builds too
    ci/matrix.py --github-output "$GITHUB_OUTPUT"   # also write kernels=<json> there

Only the standard library: the matrix job runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

CATALOG = Path(__file__).resolve().parent.parent / "kernels" / "catalog.toml"


def version_key(name: str) -> tuple:
    """6.1.192 < 6.12.107; "6.1.192-1" (older package of a pair) < "6.1.192", as the catalog orders them."""
    upstream = name.split("-", 1)[0]
    numbers = tuple(int(x) for x in re.findall(r"\d+", upstream))
    return numbers, name == upstream


def kernels(catalog: dict, series: list[str], source: str, every: bool) -> list[str]:
    entries = [k for k in catalog["kernel"] if source == "any" or k["source"] == source]
    known = sorted({k["series"] for k in entries}, key=version_key)
    unknown = [s for s in series if s not in known]
    if unknown:
        raise SystemExit(
            f"ci/matrix.py: series {', '.join(unknown)} not in the catalog for source "
            f"{source!r}; it has {', '.join(known)}"
        )
    chosen = series or known
    out = []
    for s in sorted(chosen, key=version_key):
        names = sorted((k["name"] for k in entries if k["series"] == s), key=version_key)
        out += names if every else names[-1:]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=CATALOG)
    p.add_argument("--series", default="", help="comma-separated series (default: every series)")
    p.add_argument(
        "--source",
        default="debian",
        choices=("debian", "ubuntu-mainline", "any"),
        help="which catalog source (default debian: what apt reaches from a Debian container)",
    )
    p.add_argument(
        "--all", dest="every", action="store_true", help="every kernel of a series, not the newest"
    )
    p.add_argument("--github-output", type=Path, metavar="FILE", help="append kernels=<json> to this file")
    args = p.parse_args(argv)
    with open(args.catalog, "rb") as f:
        catalog = tomllib.load(f)
    series = [s.strip() for s in args.series.split(",") if s.strip()]
    names = kernels(catalog, series, args.source, args.every)
    if not names:
        print("ci/matrix.py: no kernel matches; the CI matrix would be empty", file=sys.stderr)
        return 1
    text = json.dumps(names)
    print(text)
    if args.github_output:
        with open(args.github_output, "a") as out:
            out.write(f"kernels={text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
