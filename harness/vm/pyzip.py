"""The byte-compiled modules the guest imports from first: a tree of the host interpreter's
pure-Python modules and a zip of the harness.

The guest sees the host's root over 9p without a cache: every import costs
several round trips to QEMU (stat, open, read, close), which under TCG made
``import pytest`` take about 11 s, and a host without byte code (``uv pip
install``, ``PYTHONDONTWRITEBYTECODE``) made the guest compile each module
again at every boot. The guest puts these first on ``sys.path`` and reads them
through 9p's page cache: their directory is a page-cache share
(``harness.vm.pagecache``). Extension modules and packages with data files stay
where they are, later on ``sys.path``. A tree's or zip's name carries its
content's key, so a guest never sees one change.

The interpreter's modules are a directory tree, sources next to ``__pycache__``
byte code, not a zip: zipimport is Python code, and under TCG the guest spent
about 2 s more importing pytest and the agent from a zip than from the same
files in a cached tree, and pytest's entry-point lookup (``importlib.metadata``
reads the whole central directory of every zip on ``sys.path``) 1 s more. It is
rebuilt when the interpreter or the installed packages change.

The packages of pytest plugins' distributions (those with a ``pytest11`` entry
point) stay out: pytest rewrites the asserts of all their modules, and the guest
leaves it to find and rewrite them where the host's pytest does, in their own
files (from the zip this tree replaced, a conftest naming one of their modules in
``pytest_plugins`` saw it "already imported" unrewritten, a warning the host does
not give).

The harness itself goes in a small zip (``harness_zip``), rebuilt whenever one
of its files changes. The harness is a pytest plugin, so pytest would rewrite
(and so compile, under TCG) every module of it read from files; modules imported
from a zip are never rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import marshal
import os
import shutil
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
FORMAT = 3  # 2: without the pytest plugins' packages; 3: a tree, not a zip
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
    """(path, name in the tree) for every module worth shipping under root, but those in skip."""
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


def _write_zip(tmp: Path, target: Path, members) -> None:
    with zipfile.PyZipFile(str(tmp), "w", compression=zipfile.ZIP_STORED) as zf:
        for path, name in members:
            zf.write(path, name)
            if name.endswith(".py"):
                code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
                zf.writestr(
                    zipfile.ZipInfo(name + "c", zf.getinfo(name).date_time), _timestamp_pyc(code, path)
                )


def _timestamp_pyc(code, source: Path) -> bytes:
    """A timestamp-based .pyc, as zipimport checks it against the source entry."""
    st = source.stat()
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        + marshal.dumps(code)
    )


def _write_tree(tmp: Path, target: Path, members) -> None:
    """Each module's source and, in ``__pycache__`` beside it, byte code the import system
    takes without checking the source: the tree's name already changes with its content.
    Written in ``tmp``, compiled for where it will be, ``target``."""
    for path, name in members:
        dest = tmp / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = path.read_bytes()
        dest.write_bytes(source)
        code = compile(source, str(target / name), "exec", dont_inherit=True)
        pyc = dest.parent / "__pycache__" / f"{dest.stem}.{sys.implementation.cache_tag}.pyc"
        pyc.parent.mkdir(exist_ok=True)
        unchecked_hash = (1).to_bytes(4, "little")  # PEP 552: hash-based, check_source off
        pyc.write_bytes(
            importlib.util.MAGIC_NUMBER
            + unchecked_hash
            + importlib.util.source_hash(source)
            + marshal.dumps(code)
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


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
    return _built(cache_dir / f"harness-{h.hexdigest()[:16]}.zip", _write_zip, files)


def _built(target: Path, write, members) -> Path:
    """``target``, written once (concurrent workers share it) under a temporary name and renamed
    whole, marked as used now. What is unused for a day goes: each edit of the harness makes a
    zip (1 MB), each change of the installed packages a tree (40 MB); so do the leftovers of a
    writer that died."""
    if not target.exists():
        with FileLock(str(target.parent / ".pyzip.lock")):
            if not target.exists():
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                try:
                    write(tmp, target, members)
                    os.rename(tmp, target)
                finally:
                    if tmp.exists():
                        _remove(tmp)
                for old in (
                    *target.parent.glob("python-*"),
                    *target.parent.glob("harness-*.zip"),
                    *target.parent.glob(".*.tmp"),
                ):
                    with contextlib.suppress(OSError):
                        if time.time() - old.stat().st_mtime > UNUSED_SECONDS:
                            _remove(old)
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
    """The module tree for this interpreter, built once and shared by concurrent workers."""
    cache_dir = cache_dir or default_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return _built(cache_dir / f"python-{_key()}", _write_tree, _all_members())
