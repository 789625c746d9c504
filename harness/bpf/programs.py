"""Fixtures for BPF programs as people write them: a compiled ``.bpf.c`` object, and bcc.

    def test_hello(bpf_object):
        obj = bpf_object("c/hello.bpf.c")          # compiled on the host, loaded here
        obj.program("hello").attach()              # links and object closed at teardown
        obj.map("config").update(key, value)

Paths are relative to the test file. Where the object comes from:

- On the host (no ``--kernel``), the fixture compiles on first use (cached).
- Under ``--kernel``, the host compiles every ``*.bpf.c`` under the
  directories of the collected test files after collection, before any VM
  boots, and tells the guests where the cache is (``--bpf-objects``). The
  guest never runs clang: under TCG it would take ten times as long. A source
  that does not compile is cached with clang's diagnostics, and the test that
  asks for it fails with them.

``bcc`` gives the ``bcc`` module of Debian's ``python3-bpfcc`` (it lives in
``dist-packages``, which a virtualenv does not see), skipping when it is not
installed or when the running kernel has no headers for it to compile against.
A test may as well ``from bcc import BPF`` itself: once this plugin is loaded,
``import bcc`` finds Debian's bcc in a virtualenv too (``BccFinder``). Under
``--kernel`` the plugin fetches the headers such tests need
(``harness.plugin.headers``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bpf import compile as compiler
from harness.bpf import context, fixtures
from harness.bpf.object import BPFObject

__all__ = ["bpf_object", "bpf_object_path", "bcc", "tracing", "kprobes"]

OBJECTS = pytest.StashKey[compiler.ObjectCache]()
DIST_PACKAGES = (Path("/usr/lib/python3/dist-packages"),)


def pytest_addoption(parser):
    # the first hook a plugin hears (historic: also when registered late), before any conftest
    # or test module is imported: from here on their `import bcc` works in a virtualenv too
    install_bcc_finder()
    group = parser.getgroup("bpf-harness")
    group.addoption(
        "--bpf-objects",
        metavar="DIR",
        default=None,
        help="cache of compiled BPF objects (default: $HARNESS_BPF_OBJECTS, else bpf-objects in the user cache dir)",
    )
    group.addoption(
        "--bpf-vmlinux",
        metavar="PATH",
        default=None,
        help="kernel BTF for vmlinux.h: a BTF file, a vmlinux or a bzImage (default: /sys/kernel/btf/vmlinux)",
    )


def _cache(config) -> compiler.ObjectCache:
    if OBJECTS not in config.stash:
        config.stash[OBJECTS] = compiler.ObjectCache(
            config.getoption("bpf_objects", None), config.getoption("bpf_vmlinux", None)
        )
    return config.stash[OBJECTS]


@pytest.hookimpl(optionalhook=True)  # harness.plugin's hook: absent when the toolkit runs without it
def pytest_bpf_guest_args(config) -> list[str]:
    # the guest's pytest gets the host's arguments: add where the objects are, so it reads
    # the host's cache whatever its own HOME and environment say
    return [] if config.getoption("bpf_objects") else [f"--bpf-objects={_cache(config).root}"]


def pytest_collection_finish(session):
    """Before any VM boots: compile the sources near the collected tests (errors are cached)."""
    config = session.config
    if not context.of(config).precompile or config.option.collectonly:
        return
    dirs = {Path(str(item.path)).parent for item in session.items if getattr(item, "path", None)}
    cache = _cache(config)
    for source in compiler.find_sources(sorted(dirs)):
        try:
            cache.compile(source)
        except compiler.CompileError as exc:
            if not exc.diagnostics:  # no clang, libbpf headers or BTF: say it once, here
                warnings.warn(pytest.PytestWarning(f"BPF C sources not compiled: {exc}"), stacklevel=1)
                return
            # clang's diagnostics are cached; the test that asks for this source shows them


def _resolve(request, path: str | os.PathLike) -> Path:
    base = Path(str(request.node.path)).parent
    return (base / path).resolve()


@pytest.fixture
def bpf_object_path(request):
    """bpf_object_path(path) -> the compiled object (a Path) for a .bpf.c (or .bpf.o) path."""
    config = request.config
    cache = _cache(config)

    def find(path: str | os.PathLike) -> Path:
        __tracebackhide__ = True
        source = _resolve(request, path)
        if context.of(config).guest:
            return cache.lookup(source)
        return cache.compile(source)

    return find


@pytest.fixture
def bpf_object(bpf_object_path, bpf_privileges) -> Iterator:
    """bpf_object(path, load=True) -> BPFObject, opened (and loaded); closed with its links at teardown."""
    objects: list[BPFObject] = []

    def open_(path: str | os.PathLike, load: bool = True) -> BPFObject:
        __tracebackhide__ = True
        obj = BPFObject.open_file(bpf_object_path(path))
        objects.append(obj)
        if load:
            obj.load()
        return obj

    yield open_
    for obj in reversed(objects):
        obj.close()


# ---- what attaching needs from the kernel

TRACEFS = Path("/sys/kernel/tracing")
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")


@pytest.fixture(scope="session")
def tracing(bpf_privileges) -> Iterator[Path]:
    """tracefs where libbpf looks for it (tracepoint ids, legacy kprobes); mounted for the session if absent."""
    for path in (TRACEFS, Path("/sys/kernel/debug/tracing")):
        if (path / "events").is_dir():
            yield path
            return
    if not TRACEFS.is_dir():
        pytest.skip(f"kernel has no tracefs ({TRACEFS} missing: CONFIG_TRACING off)")
    try:
        fixtures.mount("tracefs", str(TRACEFS))
    except OSError as exc:
        pytest.skip(f"tracefs is not mounted and mounting it failed: {exc}")
    try:
        yield TRACEFS
    finally:
        fixtures.umount(str(TRACEFS))


@pytest.fixture(scope="session")
def kprobes(tracing) -> None:
    """Skip unless the kernel can attach kprobes (the perf kprobe PMU, CONFIG_KPROBE_EVENTS)."""
    if not KPROBE_PMU.is_dir():
        pytest.skip(
            f"kernel has no kprobes: {KPROBE_PMU} is missing (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off)"
        )


# ---- bcc


class BccFinder(importlib.abc.MetaPathFinder):
    """Finds the ``bcc`` package in Debian's dist-packages, and nothing else.

    Last on ``sys.meta_path``, so it answers only where the interpreter's own path has no
    bcc (a virtualenv, a pyenv Python): a user's ``from bcc import BPF`` then works as it does
    with Debian's python3. Putting dist-packages on ``sys.path`` instead would make every
    Debian package importable (built for Debian's python3) beside the virtualenv's own.
    bcc itself needs only the standard library and ``libbcc.so``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "bcc":
            return None
        for base in DIST_PACKAGES:
            init = base / "bcc" / "__init__.py"
            if init.is_file():
                return importlib.util.spec_from_file_location(
                    "bcc", init, submodule_search_locations=[str(init.parent)]
                )
        return None


def install_bcc_finder() -> None:
    """Make ``import bcc`` find Debian's python3-bpfcc (once per process)."""
    if not any(isinstance(finder, BccFinder) for finder in sys.meta_path):
        sys.meta_path.append(BccFinder())


def import_bcc():
    """Debian's bcc module (imported through BccFinder where need be), or None when it is not installed."""
    install_bcc_finder()
    try:
        return importlib.import_module("bcc")
    except ModuleNotFoundError as exc:
        if exc.name != "bcc":
            raise
        return None


def kernel_headers_reason(release: str | None = None) -> str | None:
    """Why bcc cannot compile against the running kernel's headers, or None when it can."""
    release = release or os.uname().release
    build = Path("/lib/modules") / release / "build"
    if not (build / "include").is_dir():
        return (
            f"no kernel headers for {release}: /lib/modules/{release}/build does not resolve "
            "(install linux-headers-<release>; under --kernel the harness fetches Debian's headers beside "
            "the kernel, unless --kernel-headers never)"
        )
    return None


@pytest.fixture(scope="session")
def bcc(bpf_privileges):
    """The bcc module (Debian's python3-bpfcc); skips with the reason when it cannot work here."""
    try:
        module = import_bcc()
    except (ImportError, OSError) as exc:
        pytest.skip(f"bcc (python3-bpfcc) does not import: {exc}")
    if module is None:
        pytest.skip("bcc is not installed: apt-get install python3-bpfcc")
    reason = kernel_headers_reason()
    if reason:
        pytest.skip(reason)
    return module
