"""Kernel headers for bcc under ``--kernel``: which tests need them, fetched before the VMs boot.

bcc compiles its programs in the guest against ``/lib/modules/<release>/build``
and ``source``; without them every bcc test fails with "Unable to find kernel
headers". ``harness.kernels.headers`` fetches Debian's headers packages beside
a cached kernel and links them there; this part decides when, after collection
and before any VM boots (``--kernel-headers``):

    auto     (the default) when a selected test needs bcc: it uses the ``bcc`` fixture,
             or its file imports bcc (``import bcc``, ``from bcc import BPF``,
             ``pytest.importorskip("bcc")``, at the top or inside a function), or the
             collected code imported bcc (a helper module or a conftest)
    always   for every Debian kernel of the run
    never    never; the user provides ``/lib/modules/<release>/build`` or does without

A test's file is read, not imported, for its imports: the answer is the same
whether or not the host can import bcc, and an import inside a test function
or ``setUpClass`` counts. What only a helper module imports shows in
``sys.modules`` after collection instead (the test files were imported then).

When a Debian kernel's headers cannot be had (the archive lacks the package,
or ``--offline`` and they are not cached), the tests that need bcc FAIL on that
kernel with the reason and what to do (``pytest_bpf_cannot_run``); they are not
sent to its VM. Other kernels (a built tree, Ubuntu mainline) get no headers
from the harness.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from harness.plugin.roles import Role, role, vm_mode
from harness.plugin.routing import KERNELS

NEEDS_BCC = pytest.StashKey[set[str]]()  # node ids of the selected tests that need bcc
MISSING = pytest.StashKey[dict[str, str]]()  # kernel name -> why its bcc tests cannot run
# functions that import the module named by their first argument
IMPORTERS = {"import_module", "importorskip", "__import__"}


def imports_bcc(path: Path) -> bool:
    """Whether this Python file imports bcc anywhere in it (read, not imported)."""
    if path.suffix != ".py":
        return False
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return False  # then it did not collect on the host either: nothing of it runs
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # `from .bcc import` is the user's own
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and _callee(node.func) in IMPORTERS and node.args:
            first = node.args[0]
            names = [first.value] if isinstance(first, ast.Constant) and isinstance(first.value, str) else []
        else:
            continue
        if any(name == "bcc" or name.startswith("bcc.") for name in names):
            return True
    return False


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def bcc_cases(items: Iterable) -> set[str]:
    """The node ids of the tests (a KernelItem's ``case``) that use the bcc fixture or whose file imports bcc."""
    files: dict[Path, bool] = {}
    found = set()
    for item in items:
        case = getattr(item, "case", item)
        path = getattr(case, "path", None)
        if path is not None and path not in files:
            files[path] = imports_bcc(Path(path))
        if "bcc" in getattr(case, "fixturenames", ()) or (path is not None and files[path]):
            found.add(case.nodeid)
    return found


def wanted(mode: str, needs_bcc: set[str], imported: bool) -> bool:
    """Whether to fetch headers: ``--kernel-headers`` mode, the tests that need bcc, and
    whether the collected code imported bcc."""
    return mode == "always" or (mode == "auto" and bool(needs_bcc or imported))


def pytest_collection_finish(session):
    """After routing and deselection (the tests that will run), before any VM boots."""
    config = session.config
    if not vm_mode(config) or role(config) is Role.CONTROLLER or config.option.collectonly:
        return
    mode = config.option.kernel_headers
    needs = set() if mode == "never" else bcc_cases(session.items)
    config.stash[NEEDS_BCC] = needs
    config.stash[MISSING] = {}
    if not wanted(mode, needs, "bcc" in sys.modules):
        return
    for name, kernel in config.stash[KERNELS].items():
        if kernel.source != "debian":
            _say(config, f"{name} is not a Debian kernel ({kernel.source}): no headers fetched for bcc")
            continue
        why = _ensure(config, kernel)
        if why:
            config.stash[MISSING][name] = why
            count = sum(
                1
                for item in session.items
                if getattr(item, "kernel", None) == name and item.case.nodeid in needs
            )
            _say(config, f"{why.splitlines()[0]} (tests that need bcc fail on {name}: {count})")


def _ensure(config, kernel) -> str | None:
    """Fetch (or link) the kernel's headers; why they cannot be had, or None."""
    from harness.kernels import headers  # noqa: PLC0415 - only under --kernel, with bcc
    from harness.kernels.errors import KernelError  # noqa: PLC0415

    package = f"linux-headers-{kernel.release}"
    try:
        if headers.installed(kernel) is None:
            if config.option.offline:
                raise KernelError("they are not in the cache, and --offline forbids fetching them")
            _say(config, f"fetching {package} for bcc on {kernel.name} ...")
        headers.ensure_headers(kernel)
    except (KernelError, OSError, subprocess.SubprocessError) as exc:
        mods = kernel.image.parent.parent / "lib" / "modules" / kernel.release
        return (
            f"no kernel headers for bcc on {kernel.name} (Debian's {package} and the headers packages "
            f"it depends on): {exc}\n"
            "bcc compiles against /lib/modules/<release>/build in the guest. To run this test, "
            + ("run once without --offline, " if config.option.offline else "")
            + f"choose another kernel, or install the headers yourself, link build and source in {mods} "
            "to them, and pass --kernel-headers never"
        )
    return None


def pytest_bpf_cannot_run(item) -> str | None:
    config = item.config
    missing = config.stash.get(MISSING, {})
    if item.kernel in missing and item.case.nodeid in config.stash.get(NEEDS_BCC, set()):
        return missing[item.kernel]
    return None


def _say(config, text: str) -> None:
    from harness.plugin.dispatch import note  # noqa: PLC0415 - the VM side, imported by now

    note(config, text)
