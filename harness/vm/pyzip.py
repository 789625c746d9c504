"""One zip of the host interpreter's pure-Python modules, for the guest to import from.

The guest sees the host's root over 9p without a cache: every import costs
several round trips to QEMU (stat, open, read, close), which under TCG made
``import pytest`` take about 11 s. The guest puts this zip first on
``sys.path``, read through 9p's page cache where the zips' directory is shared
for it (``harness.vm.pagecache``), else copied into its tmpfs first (one
sequential read of 43 MB, about 1.2 s); that measured 4-7 s for the same import.
Extension modules and packages with data files stay where they are, later on
``sys.path``. A zip's name carries its content's key, so a guest never sees
one change.

The zip holds sources next to byte code, so tracebacks through the standard
library still show their lines. It is rebuilt when the interpreter or the
installed packages change.

The packages of pytest plugins' distributions (those with a ``pytest11`` entry
point) stay out: pytest rewrites the asserts of all their modules, which it
can only do for files, and a conftest naming one of their modules in
``pytest_plugins`` would then see it "already imported" unrewritten, a warning
the host does not give (an error under ``-W error``).

The harness itself goes in a second, small zip (``harness_zip``), rebuilt
whenever one of its files changes. Over 9p the guest compiled each of the
harness modules it imports from source at every boot (it runs with ``-B`` on
a read-only root, and a host with ``PYTHONDONTWRITEBYTECODE`` has no byte code
to offer), and pytest rewrote the asserts of every one, since the harness is
a pytest plugin; modules imported from a zip are never rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
import time
import zipfile
from collections.abc import Collection
from pathlib import Path

from filelock import FileLock

from harness import parts

# Never imported by tests in a guest, large, or tied to a display.
SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
    "site-packages",
    "dist-packages",
    "lib-dynload",
    "__pycache__",
    "venv",
    "harness",
}
UNUSED_SECONDS = 86400
FORMAT = 2  # 2: without the pytest plugins' packages
CODE_ONLY = {".py", ".pyi", ".typed"}  # a package with other files may read them from disk


def roots() -> list[Path]:
    paths = sysconfig.get_paths()
    found = []
    for key in ("stdlib", "purelib", "platlib"):
        path = Path(paths[key])
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def _key() -> str:
    h = hashlib.sha256(f"{sys.version} {FORMAT}".encode())
    for root in roots():
        h.update(str(root).encode())
        for entry in sorted(root.iterdir()):
            h.update(f"{entry.name}:{entry.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def plugin_packages() -> set[str]:
    """Top-level names (``xdist``, ``pytest_cov.py``) of the distributions that are pytest
    plugins: pytest marks all their modules for assertion rewriting (``_mark_plugins_for_rewrite``)."""
    names: set[str] = set()
    for dist in importlib.metadata.distributions():
        if any(ep.group == "pytest11" for ep in dist.entry_points):
            names.update(Path(f).parts[0] for f in dist.files or [] if Path(f).parts)
    return names


def _members(root: Path, skip: Collection[str] = ()):
    """(path, name in the zip) for every module worth shipping under root, but those in skip."""
    for entry in sorted(root.iterdir()):
        if (
            entry.name in SKIP
            or entry.name in skip
            or entry.name.startswith(("_distutils_hack", "__editable__"))
        ):
            continue
        if entry.is_file() and entry.suffix == ".py":
            yield entry, entry.name
        elif entry.is_dir() and (entry / "__init__.py").exists():
            files = [p for p in entry.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            if all(p.suffix in CODE_ONLY for p in files):
                for p in sorted(files):
                    if p.suffix == ".py":
                        yield p, str(p.relative_to(root))


def _write(target: Path, members) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with zipfile.PyZipFile(str(tmp), "w", compression=zipfile.ZIP_STORED) as zf:
            for path, name in members:
                zf.write(path, name)
                if name.endswith(".py"):
                    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
                    zf.writestr(zipfile.ZipInfo(name + "c", zf.getinfo(name).date_time), _pyc(code, path))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _pyc(code, source: Path) -> bytes:
    """A timestamp-based .pyc, as zipimport checks it against the source entry."""
    import marshal  # noqa: PLC0415

    st = source.stat()
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        + marshal.dumps(code)
    )


def _harness_files() -> list[tuple[Path, str]]:
    """(path, name in the zip) for every file of the harness's packages, wherever they live
    (``harness.kernels`` is the repository's ``kernels/`` directory)."""
    found = []
    for name in parts.PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for p in sorted(root.iterdir()):
            if p.is_file() and not p.name.endswith((".pyc", ".tmp")):
                found.append((p, f"{name.replace('.', '/')}/{p.name}"))
    return found


def harness_zip(cache_dir: Path | None = None) -> Path:
    """The harness's own modules (and data files), byte-compiled, for the guest to import."""
    cache_dir = cache_dir or default_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = _harness_files()
    h = hashlib.sha256(sys.version.encode())
    for path, name in files:
        st = path.stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return _built(cache_dir / f"harness-{h.hexdigest()[:16]}.zip", files)


def _built(target: Path, members) -> Path:
    """``target``, written once (concurrent workers share it), marked as used now; zips
    unused for a day are removed: each edit of the harness makes one (1 MB), each change
    of the installed packages another (40 MB)."""
    if not target.exists():
        with FileLock(str(target.parent / ".pyzip.lock")):
            if not target.exists():
                _write(target, members)
                for old in target.parent.glob("*.zip"):
                    with contextlib.suppress(OSError):
                        if time.time() - old.stat().st_mtime > UNUSED_SECONDS:
                            old.unlink()
    with contextlib.suppress(OSError):
        os.utime(target)  # a VM boots from it now: not to be removed as unused
    return target


def default_dir() -> Path:
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_cache_dir("bpf-vm-harness")) / "python"


def _all_members():
    skip = plugin_packages()  # a generator: only when the zip is built, as it lists every distribution
    for root in roots():
        yield from _members(root, skip)


def ensure(cache_dir: Path | None = None) -> Path:
    """The zip for this interpreter, built once and shared by concurrent workers."""
    cache_dir = cache_dir or default_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return _built(cache_dir / f"python-{_key()}.zip", _all_members())
