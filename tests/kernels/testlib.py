"""Shared pieces for the kernel tests: a real Debian kernel .deb, a local HTTP archive that serves it, test catalogs."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from harness.kernels.catalog import load_catalog
from harness.kernels.kernel import sha256_file as sha256  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("HARNESS_TEST_PYTHON") or __import__("sys").executable

# The smallest generic kernel in the catalog (about 70 MB).
DEB_NAME = "6.1.170"
MAINLINE_DEB = "linux-image-unsigned-6.8.0-060800-generic_6.8.0-060800.202403131158_amd64.deb"

_deb_cache: dict[str, Path] = {}


def catalog_entry(name: str = DEB_NAME):
    packaged = load_catalog(REPO / "kernels" / "catalog.toml")
    return packaged.get(name)


def real_deb(tmp_path_factory) -> Path:
    """Download the real Debian package once per test session (apt-get download)."""
    if "deb" in _deb_cache:
        return _deb_cache["deb"]
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip(
            "needs apt-get and dpkg-deb (Debian/Ubuntu host) to fetch and unpack a real kernel package"
        )
    e = catalog_entry()
    d = tmp_path_factory.mktemp("deb")
    cmd = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        cmd += ["-o", "APT::Sandbox::User=root"]
    r = subprocess.run(cmd + [f"{e.package}={e.package_version}"], cwd=d, capture_output=True, text=True)
    debs = list(d.glob("*.deb"))
    if r.returncode != 0 or len(debs) != 1:
        pytest.skip(
            f"apt-get download {e.package}={e.package_version} failed here: {r.stderr.strip()[-300:]}"
        )
    _deb_cache["deb"] = debs[0]
    return debs[0]


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


def write_catalog(path: Path, tables: list[dict]) -> Path:
    lines = ["schema = 1", ""]
    for t in tables:
        lines.append("[[kernel]]")
        for k, v in t.items():
            lines.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def debian_table(name: str = DEB_NAME) -> dict:
    e = catalog_entry(name)
    return {
        k: getattr(e, k)
        for k in (
            "name",
            "series",
            "source",
            "package",
            "package_version",
            "release",
            "filename",
            "sha256",
            "size",
        )
    }


def mainline_table(name: str = "6.8", release: str | None = None) -> dict:
    t = {"name": name, "series": name, "source": "ubuntu-mainline", "tag": f"v{name}"}
    if release:
        t["release"] = release
    return t


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
