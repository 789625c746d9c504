"""The one version order for kernel names: catalog, bisect, reports and ci/matrix.py sort with kernel_order.

    sorted(["6.12.107-1", "6.1.192-3", "6.1.192-10", "5.10.262-1", "6.8"], key=kernel_order)
    -> ["5.10.262-1", "6.1.192-3", "6.1.192-10", "6.8", "6.12.107-1"]

A catalog name is an upstream version ("6.12.117", "6.8"), followed for a
Debian build by "-" and its Debian revision, with Debian's "~" written "."
(pytest's -k cannot hold a "~"): "6.12.117-1.deb12u1" is the package version
6.12.117-1~deb12u1 and sorts before "6.12.117-1", as Debian orders them
(debian_key). A bare upstream version sorts after the builds that share it
("6.1.192" is what older catalogs and results called the newest build).
Anything else (a release such as "6.18.44-fc-v669" read from an image) sorts
by its leading version. Names that start with no version sort after every
version, by text.

Only the standard library: ci/matrix.py imports this before anything is installed.
"""

from __future__ import annotations

import re

_LEADING = re.compile(r"(\d+(?:\.\d+)*)")
_PART = re.compile(r"(\D*)(\d*)")
# In a name, "." before a letter stands for Debian's "~" (1~deb12u1, 1~bpo13+1, 1~exp1).
_TILDE_AS_DOT = re.compile(r"\.(?=[A-Za-z])")
# Runs of non-digits and digits a version part may have (Debian kernels have up to 6).
_PAIRS = 24


def version_tuple(text: str) -> tuple[int, ...] | None:
    """The leading dotted number of text, padded to three parts: "6.8" -> (6, 8, 0); None if there is none."""
    m = _LEADING.match(text)
    if not m:
        return None
    parts = tuple(int(x) for x in m.group(1).split("."))
    return parts + (0,) * (3 - len(parts))


def _dpkg_part(text: str) -> tuple:
    """dpkg's order of one version part as a sort key: runs of non-digits (letters before
    other characters, "~" before everything, even the end) alternating with numbers."""

    def order(c: str) -> int:
        return -1 if c == "~" else ord(c) if c.isalpha() else ord(c) + 256

    key: list = []
    for text_run, digits in _PART.findall(text):
        if text_run or digits:
            key += [(*map(order, text_run), 0), int(digits or 0)]
    # dpkg reads an exhausted version as empty runs and zeros ("" == "0", "1~" < "1"): padding
    # every key to one length makes tuples compare the same way. Longer parts are cut (a sort
    # key never raises); no real version comes near.
    key = key[: 2 * _PAIRS]
    return (*key, *((0,), 0) * (_PAIRS - len(key) // 2))


def debian_key(version: str) -> tuple:
    """Sort key of a Debian package version, as dpkg compares them (epoch, upstream, revision)."""
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return (int(epoch or 0), _dpkg_part(upstream), _dpkg_part(revision))


def debian_name(version: str) -> str:
    """The catalog name of a Debian kernel build: its package version, "~" written "."
    ("6.12.117-1~deb12u1" -> "6.12.117-1.deb12u1"; "7.3.4-1~bpo13+1" -> "7.3.4-1.bpo13+1")."""
    return version.replace("~", ".")


def name_revision(name: str) -> str:
    """The Debian revision a name carries, "~" restored: "6.12.117-1.deb12u1" -> "1~deb12u1"; "" if none."""
    return _TILDE_AS_DOT.sub("~", name.partition("-")[2])


def kernel_order(name: str) -> tuple:
    """Sort key: version first (6.1.192 < 6.12.107, 6.8 == 6.8.0), then the Debian revision
    ("6.1.192-3" < "6.1.192-10", "6.12.117-1.deb12u1" < "6.12.117-1"), a bare version after
    its builds, then text."""
    upstream, sep, _ = name.partition("-")
    numbers = version_tuple(upstream)
    if numbers is None:
        return (1, (), False, (), name)
    bare = not sep and _LEADING.fullmatch(upstream.split("+", 1)[0]) is not None
    return (0, numbers, bare, _dpkg_part(name_revision(name)), name)


def series(name: str) -> str:
    """major.minor of a kernel name or release: "6.12.117" -> "6.12", "5.10.0-46-amd64" -> "5.10"."""
    numbers = version_tuple(name)
    if numbers is None:
        raise ValueError(f"cannot read a kernel version from {name!r}")
    return f"{numbers[0]}.{numbers[1]}"
