"""Ask the host's apt about packages: parse `apt-cache show` stanzas, find which pinned packages apt can fetch."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Split deb822 text (apt-cache show, Packages files) into field dicts.

    Continuation lines (starting with a space) belong to the previous field;
    the fields we read are all single-line, so they are kept but joined.
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last:
            current[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def have_apt() -> bool:
    return shutil.which("apt-cache") is not None and shutil.which("apt-get") is not None


def known(pins: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Return the (package, version) pairs the host's apt index lists.

    One apt-cache call for all pins (about half a second); an unknown pin
    only produces a note on stderr, so the answer is read from stdout.
    """
    pins = list(pins)
    if not pins or not have_apt():
        return set()
    try:
        out = subprocess.run(
            ["apt-cache", "show", *(f"{p}={v}" for p, v in pins)],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    found = {(s.get("Package", ""), s.get("Version", "")) for s in parse_stanzas(out)}
    return found & set(pins)
