"""Fetch a pinned Debian .deb from Debian's snapshot archive, for a pin the archive's suite no longer carries.

The snapshot archive keeps every file Debian has published and indexes files by
sha1. Its machine-readable API lists the files of one binary package version:

    GET <snapshot>/mr/binary/<package>/<version>/binfiles?fileinfo=1
    {"result": [{"hash": "<sha1>", "architecture": "amd64"}, ...],
     "fileinfo": {"<sha1>": [{"name": "<package>_<version>_amd64.deb", "size": N,
                              "archive_name": "debian", "path": "/pool/...", ...}]}}
    GET <snapshot>/file/<sha1>           the file

The trust is the catalog's pin (written from the signed index when the build was
current): a listed file whose name or size differs from the pin is not
downloaded, and a download whose sha256 or size differs is discarded. The URL
is the catalog's [sources] `snapshot`, or $HARNESS_SNAPSHOT_MIRROR.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from . import http
from .catalog import SOURCE_ENV, DebPin
from .errors import KernelError

MIRROR_ENV = SOURCE_ENV["snapshot"]
ARCHITECTURE = "amd64"


class NotInSnapshot(KernelError):
    """The snapshot archive answered, but has no file that matches the pin."""


def fetch(base: str, pin: DebPin, dest: Path, *, progress: bool) -> Path:
    """Put the pinned .deb at dest/<its file name>, verified, or raise KernelError
    (ArchiveUnreachable when the snapshot archive cannot be reached, NotInSnapshot when it has no such file)."""
    s = http.session()
    listing = (
        f"{base}mr/binary/{quote(pin.package, safe='')}/{quote(pin.version, safe='')}/binfiles?fileinfo=1"
    )
    try:
        text = http.get_text(s, listing)
    except http.NotFound:
        raise NotInSnapshot(f"has no {pin.package} {pin.version} ({listing} answered 404)") from None
    candidates = _candidates(listing, text, pin)
    if not candidates:
        raise NotInSnapshot(
            f"lists no {ARCHITECTURE} file of {pin.package} {pin.version} named "
            f"{Path(pin.filename).name} with {pin.size} bytes ({listing})"
        )
    target = dest / Path(pin.filename).name
    last: KernelError | None = None
    for sha1 in candidates:
        try:
            http.download(
                s, f"{base}file/{sha1}", target, sha256=pin.sha256, size=pin.size, progress=progress
            )
            return target
        except (http.NotFound, http.Mismatch) as e:
            last = e  # gone, or another file of that name and size: try the next one
    raise NotInSnapshot(f"has no file with the pinned sha256 {pin.sha256} ({last})")


def _candidates(url: str, text: str, pin: DebPin) -> list[str]:
    """sha1s of the amd64 files of that package version whose name and size are the pin's."""
    try:
        data = json.loads(text)
        result = data["result"]
        info = data.get("fileinfo") or {}
        hashes = [r["hash"] for r in result if r.get("architecture") == ARCHITECTURE]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KernelError(
            f"{url} is not the snapshot archive's API (expected JSON with a `result` list); "
            f"check {MIRROR_ENV}"
        ) from None
    name = Path(pin.filename).name
    return [
        h
        for h in hashes
        if any(
            isinstance(f, dict) and f.get("name") == name and f.get("size") == pin.size
            for f in info.get(h, [])
        )
    ]
