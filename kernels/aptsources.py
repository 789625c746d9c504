"""Where the Debian archive is: the base URLs named by the host's apt sources, or by a mirror option.

    bases(explicit=None) -> [Base("http://.../debian", security=False), Base(".../debian-security", True)]

Order of precedence: --debian-mirror / $HARNESS_DEBIAN_MIRROR when given
(a user who names a mirror means it; the tests point it at a local server),
else the host's apt sources: the deb822 `*.sources` files and the one-line
`sources.list` / `*.list` files under $HARNESS_APT_ETC (default /etc/apt).
Only entries whose suites are Debian's (bookworm, trixie-security, sid, ...)
count, so a third-party repository in the same directory is never asked
for a kernel. Nothing here names an archive host.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from debian import deb822

from .errors import KernelError

MIRROR_ENV = "HARNESS_DEBIAN_MIRROR"
APT_ETC_ENV = "HARNESS_APT_ETC"
DEFAULT_APT_ETC = "/etc/apt"

# Debian's codenames and suite aliases: a suite "trixie-backports" is
# Debian's when the part before the first "-" is one of these.
DEBIAN_SUITES = frozenset(
    "buster bullseye bookworm trixie forky duke sid experimental rc-buggy "
    "oldoldstable oldstable stable testing unstable".split()
)


@dataclass(frozen=True)
class Base:
    """An archive root (the directory that holds dists/ and pool/)."""

    url: str
    security: bool  # serves the "-security" suites


def apt_etc() -> Path:
    return Path(os.environ.get(APT_ETC_ENV) or DEFAULT_APT_ETC)


def is_debian_suite(suite: str) -> bool:
    return suite.split("-", 1)[0] in DEBIAN_SUITES


def _entries_deb822(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for para in deb822.Deb822.iter_paragraphs(f):
            if para.get("Enabled", "yes").strip().lower() == "no":
                continue
            if "deb" not in para.get("Types", "").split():
                continue
            suites = para.get("Suites", "").split()
            out += [(uri, suites) for uri in para.get("URIs", "").split()]
    return out


def _entries_one_line(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        # deb [arch=amd64 signed-by=...] URI SUITE COMPONENT...
        line = re.sub(r"\[[^\]]*\]", " ", line)
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            out.append((words[1], [words[2]]))
    return out


def from_apt(etc: Path | None = None) -> list[Base]:
    """The Debian archive roots the host's apt sources list, main archives first."""
    etc = etc or apt_etc()
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    d = etc / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    found: dict[str, bool] = {}
    for f in files:
        try:
            entries = _entries_deb822(f) if f.suffix == ".sources" else _entries_one_line(f)
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # apt would complain about it too; it cannot be ours to fix
        for uri, suites in entries:
            debian = [s for s in suites if is_debian_suite(s)]
            if debian and uri.startswith(("http://", "https://")):
                url = uri.rstrip("/")
                found[url] = found.get(url, False) or any(s.endswith("-security") for s in debian)
    return sorted((Base(u, sec) for u, sec in found.items()), key=lambda b: b.security)


def from_mirror(value: str) -> list[Base]:
    """Bases from --debian-mirror / $HARNESS_DEBIAN_MIRROR: URLs separated by spaces or commas.

    Which one serves which suite is not known, so every one is tried."""
    urls = [m.rstrip("/") for m in re.split(r"[\s,]+", value) if m]
    return [Base(u, security=False) for u in urls] + [Base(u, security=True) for u in urls]


def bases(explicit: str | None = None) -> list[Base]:
    """Archive roots to use, or a KernelError that says what to set."""
    mirror = explicit if explicit is not None else os.environ.get(MIRROR_ENV, "")
    if mirror.strip():
        return from_mirror(mirror)
    found = from_apt()
    if found:
        return found
    raise KernelError(
        f"no Debian archive is configured: this host's apt sources ({apt_etc()}/sources.list and "
        f"{apt_etc()}/sources.list.d/) list no Debian suite, and neither --debian-mirror nor "
        f"{MIRROR_ENV} is set; set {MIRROR_ENV} to the base URL(s) of a Debian archive and its "
        "security archive (the directories that hold dists/ and pool/), separated by a space"
    )


def for_suite(suite: str, all_bases: list[Base]) -> list[str]:
    """The URLs to try for one suite: security archives first for "-security" suites, last otherwise."""
    want = suite.endswith("-security")
    ordered = [b for b in all_bases if b.security == want] + [b for b in all_bases if b.security != want]
    return list(dict.fromkeys(b.url for b in ordered))
