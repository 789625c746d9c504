"""Shared pieces for the kernel tests: a real Debian kernel .deb, a local HTTP archive that serves it
(in the Debian archive's layout, or the snapshot archive's), test catalogs."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from debian import deb822

from harness.kernels import KernelError, aptsources
from harness.kernels.archive import PACKAGES
from harness.kernels.catalog import load_catalog
from harness.kernels.kernel import sha256_file as sha256  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("HARNESS_TEST_PYTHON") or __import__("sys").executable

# The smallest generic kernel in the catalog (57 MB, one .deb) and a 7.x one (split layout).
DEB_NAME = "5.10.262-1"
SPLIT_NAME = "7.3.4-1.bpo13+1"
MAINLINE_DEB = "linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb"

_real: dict[str, RealSuite] = {}


def catalog_entry(name: str = DEB_NAME):
    packaged = load_catalog(REPO / "kernels" / "catalog.toml")
    return packaged.get(name)


@dataclass
class RealSuite:
    """Copies of a suite's real InRelease and Packages index and of one kernel's real .debs.

    files: URL path under an archive root -> local file, ready for Archive."""

    suite: str
    files: dict[str, Path]
    debs: list[Path]

    @property
    def inrelease(self) -> str:
        return f"/dists/{self.suite}/InRelease"

    @property
    def packages(self) -> str:
        return f"/dists/{self.suite}/{PACKAGES}"


def real_suite(tmp_path_factory, name: str = DEB_NAME, suite: str | None = None) -> RealSuite:
    """Download, once per session, the real archive files a catalog kernel needs.

    From the Debian archive this host's apt sources (or HARNESS_DEBIAN_MIRROR)
    name, as plain copies: checking them is the code under test's job. With
    suite, the signed index of that suite instead of the entry's own (the
    kernel's .debs all the same): a suite that does not carry the kernel."""
    e = catalog_entry(name)
    suite = suite or e.suite
    key = f"{name}@{suite}"
    if key in _real:
        return _real[key]
    try:
        urls = aptsources.for_suite(suite, aptsources.bases())
    except KernelError as err:
        pytest.skip(f"needs the Debian archive to copy real index files from: {err}")
    d = tmp_path_factory.mktemp(f"archive-{name}-{suite}")
    s = requests.Session()
    for base in urls:
        try:
            r = s.get(f"{base}/dists/{suite}/InRelease", timeout=30)
        except requests.RequestException as err:
            pytest.skip(f"the Debian archive {base} is unreachable from here: {err}")
        if r.status_code == 200:
            break
    else:
        pytest.skip(f"no configured Debian archive serves {suite} ({', '.join(urls)})")
    files = {}

    def copy(path: str, data: bytes | None = None) -> Path:
        local = d / Path(path).name
        if data is None:
            with s.get(base + path, stream=True, timeout=30) as got:
                got.raise_for_status()
                with open(local, "wb") as f:
                    for chunk in got.iter_content(1 << 20):
                        f.write(chunk)
        else:
            local.write_bytes(data)
        files[path] = local
        return local

    copy(f"/dists/{suite}/InRelease", r.content)
    copy(f"/dists/{suite}/{PACKAGES}")
    if suite == e.suite:
        debs = [copy(f"/{pin.filename}") for pin in e.debs]
    else:  # the .debs from the suite that carries them, shared with real_suite(name)
        debs = real_suite(tmp_path_factory, name).debs
    _real[key] = RealSuite(suite, files, debs)
    return _real[key]


def real_deb(tmp_path_factory) -> Path:
    """The real .deb of DEB_NAME (one package: linux-image-5.10.0-*-amd64-unsigned)."""
    return real_suite(tmp_path_factory).debs[0]


def signed_text_offset(inrelease: Path) -> int:
    """Where the "Date:" value starts: a byte inside the signed text of an InRelease file."""
    return inrelease.read_bytes().index(b"\nDate: ") + len(b"\nDate: ")


def flipped(src: Path, dest: Path, offset: int) -> Path:
    """A copy of src with one byte changed at offset."""
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def release_of(inrelease: Path) -> deb822.Release:
    return deb822.Release(inrelease.read_bytes())


class Archive:
    """A local HTTP server over a dict of URL path -> file; counts every request.

    modes[path] = "corrupt" flips one byte in the body, "drop" sends the
    headers and half the body, then closes the connection.
    """

    def __init__(self):
        self.files: dict[str, Path | bytes] = {}
        self.modes: dict[str, str] = {}
        self.hits: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                owner.hits[path] += 1
                body = owner.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data_len = len(body) if isinstance(body, bytes) else body.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(data_len))
                self.end_headers()
                mode = owner.modes.get(path)
                sent = 0
                for chunk in _chunks(body):
                    if mode == "drop" and sent + len(chunk) > data_len // 2:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if mode == "corrupt" and sent == 0:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    self.wfile.write(chunk)
                    sent += len(chunk)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _chunks(body):
    if isinstance(body, bytes):
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]
        return
    with open(body, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_catalog(path: Path, tables: list[dict], sources: dict[str, str] | None = None) -> Path:
    """A catalog file (schema 2); a table's "debs" list becomes [[kernel.debs]] tables; sources the [sources] table."""

    def value(v):
        return str(v) if isinstance(v, int) else f'"{v}"'

    lines = ["schema = 2", ""]
    if sources is not None:
        lines += ["[sources]", *(f"{k} = {value(v)}" for k, v in sources.items()), ""]
    for t in tables:
        lines.append("[[kernel]]")
        lines += [f"{k} = {value(v)}" for k, v in t.items() if k != "debs"]
        for d in t.get("debs", []):
            lines.append("[[kernel.debs]]")
            lines += [f"{k} = {value(v)}" for k, v in d.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def debian_table(of: str = DEB_NAME, **changes) -> dict:
    """The packaged catalog's entry `of` as a table; changes replace fields, deb_* fields the first .deb's."""
    e = catalog_entry(of)
    t = {k: getattr(e, k) for k in ("name", "series", "source", "suite", "release")}
    t["debs"] = [dict(vars(p)) for p in e.debs]
    for k, v in changes.items():
        if k.startswith("deb_"):
            t["debs"][0][k.removeprefix("deb_")] = v
        else:
            t[k] = v
    return t


def mainline_table(name: str = "6.8", release: str | None = None) -> dict:
    t = {"name": name, "series": name, "source": "ubuntu-mainline", "tag": f"v{name}"}
    if release:
        t["release"] = release
    return t


def snapshot_files(pin, deb: Path, archive_name: str = "debian-security") -> dict[str, bytes | Path]:
    """URL path -> body for the snapshot archive's layout: the API's listing of one binary
    package version (as /mr/binary/<package>/<version>/binfiles?fileinfo=1 answers) and
    the file under /file/<sha1>."""
    sha1 = hashlib.sha1(deb.read_bytes()).hexdigest()
    listing = {
        "_comment": "foo",
        "binary": pin.package,
        "binary_version": pin.version,
        "result": [{"architecture": "amd64", "hash": sha1}],
        "fileinfo": {
            sha1: [
                {
                    "archive_name": archive_name,
                    "first_seen": "20260101T000000Z",
                    "name": Path(pin.filename).name,
                    "path": "/" + str(Path(pin.filename).parent),
                    "size": deb.stat().st_size,
                }
            ]
        },
    }
    version = quote(pin.version, safe="")
    return {
        f"/mr/binary/{pin.package}/{version}/binfiles": json.dumps(listing).encode(),
        f"/file/{sha1}": deb,
    }


def checksums_text(files: dict[str, Path]) -> bytes:
    """A CHECKSUMS file in the mainline archive's format (Sha1 section, then Sha256)."""
    out = ["# Checksums-Sha1:"]
    for name, p in files.items():
        out.append(f"{hashlib.sha1(p.read_bytes()).hexdigest()}  {name}")
    out.append("# Checksums-Sha256:")
    for name, p in files.items():
        out.append(f"{sha256(p)}  {name}")
    return ("\n".join(out) + "\n").encode()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob(".tmp-*")) if root.exists() else []
