"""Download files over HTTP for the kernel sources: retries, a time budget for unreachable hosts, sha256 while streaming, progress on stderr."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ArchiveUnreachable, KernelError

if TYPE_CHECKING:
    from rich.progress import Progress

# An unreachable archive must fail in about 10 s, not hang a test session:
# 3 connection attempts of at most 2.5 s each plus 1 s of backoff.
CONNECT_TIMEOUT = 2.5
# Between two chunks of a body; a stalled mirror is an error, a slow one is not.
READ_TIMEOUT = 30.0
CHUNK = 1 << 20


class NotFound(KernelError):
    """The server answered 404/410: try the next mirror or layout."""


class Mismatch(KernelError):
    """The downloaded file has another size or sha256 than expected; it was discarded."""


def session() -> requests.Session:
    retry = Retry(
        total=2,
        connect=2,
        read=2,
        status=2,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _get(s: requests.Session, url: str, *, stream: bool) -> requests.Response:
    try:
        r = s.get(url, stream=stream, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    except (requests.ConnectionError, requests.Timeout) as e:
        raise ArchiveUnreachable(f"cannot connect for {url}: {_reason(e)}") from None
    except requests.RequestException as e:
        raise KernelError(f"request for {url} failed: {e}") from None
    if r.status_code in (404, 410):
        r.close()
        raise NotFound(f"{url} does not exist (HTTP {r.status_code})")
    if r.status_code != 200:
        r.close()
        raise KernelError(
            f"{url} answered HTTP {r.status_code} {r.reason}; try again later or use another mirror"
        )
    return r


def _reason(e: Exception) -> str:
    # requests nests urllib3's MaxRetryError; its innermost reason is the useful part.
    inner = getattr(getattr(e.args[0] if e.args else None, "reason", None), "args", None)
    text = str(inner[0] if inner else e)
    marker = "Failed to establish a new connection: "
    return text.split(marker, 1)[1] if marker in text else text


def get_text(s: requests.Session, url: str) -> str:
    r = _get(s, url, stream=False)
    return r.text


def get_bytes(s: requests.Session, url: str) -> bytes:
    r = _get(s, url, stream=False)
    return r.content


def download(
    s: requests.Session,
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    attempts: int = 2,
) -> str:
    """Stream url into dest and return its sha256.

    A body that breaks off is fetched again from the start (urllib3 retries
    only cover the request, not the body); a checksum or size mismatch
    deletes dest and raises.
    """
    last: Exception = KernelError("no attempt made")
    for attempt in range(1, attempts + 1):
        try:
            digest, got = _stream(s, url, dest, size, progress)
            break
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as e:
            dest.unlink(missing_ok=True)
            last = e
            if progress:
                print(
                    f"download of {url} broke off ({_reason(e)}); attempt {attempt} of {attempts}",
                    file=sys.stderr,
                )
    else:
        raise KernelError(
            f"download of {url} broke off {attempts} times ({_reason(last)}); nothing was kept. "
            "Run the command again; if it keeps failing, use another mirror"
        )
    if size is not None and got != size:
        dest.unlink(missing_ok=True)
        raise Mismatch(
            f"{url}: expected {size} bytes, got {got}; the file was discarded. "
            "The mirror serves a different file than the catalog pins: use another mirror"
        )
    if sha256 is not None and digest != sha256:
        dest.unlink(missing_ok=True)
        raise Mismatch(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; the file was "
            "discarded. The mirror serves a corrupt or different file: try again or use another mirror"
        )
    return digest


def _stream(s, url, dest, size, progress) -> tuple[str, int]:
    h = hashlib.sha256()
    got = 0
    with _get(s, url, stream=True) as r:
        total = size or int(r.headers.get("Content-Length") or 0) or None
        with _Progress(url, url.rsplit("/", 1)[-1], total, progress) as bar, open(dest, "wb") as f:
            for chunk in r.iter_content(CHUNK):
                f.write(chunk)
                h.update(chunk)
                got += len(chunk)
                bar.advance(len(chunk))
    return h.hexdigest(), got


class _Progress:
    """A rich bar when stderr is a terminal, one line before and after otherwise
    (CI logs should not fill with carriage returns)."""

    def __init__(self, url: str, label: str, total: int | None, enabled: bool):
        self.url, self.label, self.total, self.enabled = url, label, total, enabled
        self.rich: Progress | None = None

    def __enter__(self):
        self.start = time.monotonic()
        if not self.enabled:
            return self
        if sys.stderr.isatty():
            from rich.console import Console  # noqa: PLC0415 - only on a terminal
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.rich.start()
            self.task = self.rich.add_task(self.label, total=self.total)
        else:
            mb = f" ({self.total / 1e6:.1f} MB)" if self.total else ""
            print(f"fetching {self.url}{mb}", file=sys.stderr, flush=True)
        return self

    def advance(self, n: int) -> None:
        if self.rich:
            self.rich.advance(self.task, n)

    def __exit__(self, exc_type, exc, tb):
        if self.rich:
            self.rich.stop()
        if self.enabled and exc_type is None:
            print(
                f"fetched {self.label} in {time.monotonic() - self.start:.1f} s", file=sys.stderr, flush=True
            )
        return False
