"""The one version order for kernel names: catalog, bisect, reports and ci/matrix.py sort with kernel_order.

    sorted(["6.12.107", "6.1.192", "6.1.192-1", "5.10.262", "6.8"], key=kernel_order)
    -> ["5.10.262", "6.1.192-1", "6.1.192", "6.8", "6.12.107"]

A name is an upstream version ("6.12.117", "6.8"), optionally followed by
"-" and a Debian revision when several packages share one upstream version
(ci/update_catalog.py gives the newest package the bare name, so the
suffixed names are the older ones of their group). Anything else (a release
such as "6.18.44-fc-v669" read from an image) sorts by its leading version.
Names that start with no version sort after every version, by text.

Only the standard library: ci/matrix.py imports this before anything is installed.
"""

from __future__ import annotations

import re

_LEADING = re.compile(r"(\d+(?:\.\d+)*)")


def version_tuple(text: str) -> tuple[int, ...] | None:
    """The leading dotted number of text, padded to three parts: "6.8" -> (6, 8, 0); None if there is none."""
    m = _LEADING.match(text)
    if not m:
        return None
    parts = tuple(int(x) for x in m.group(1).split("."))
    return parts + (0,) * (3 - len(parts))


def kernel_order(name: str) -> tuple:
    """Sort key: version first (6.1.192 < 6.12.107, 6.8 == 6.8.0), then a
    suffixed name before the bare one ("6.1.192-1" < "6.1.192"), then text."""
    upstream, sep, _ = name.partition("-")
    numbers = version_tuple(upstream)
    if numbers is None:
        return (1, (), False, name)
    bare = not sep and _LEADING.fullmatch(upstream.split("+", 1)[0]) is not None
    return (0, numbers, bare, name)


def series(name: str) -> str:
    """major.minor of a kernel name or release: "6.12.117" -> "6.12", "5.10.0-46-amd64" -> "5.10"."""
    numbers = version_tuple(name)
    if numbers is None:
        raise ValueError(f"cannot read a kernel version from {name!r}")
    return f"{numbers[0]}.{numbers[1]}"
