"""Where a run's files go: one new directory per run, so concurrent runs never overwrite each other.

    results/20261128T071512Z-4242/results.json     the run's results file
    results/20261128T071512Z-4242/vm-logs/          one console log per VM
    results/latest -> 20261128T071512Z-4242         the newest finished run

``--results-dir DIR`` names the directory itself instead; ``--results-json``
the results file. Without ``--kernel`` and without any of these (or the
``bpf_results_dir`` ini option) a run records nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from harness.plugin.options import RESULTS_INI
from harness.plugin.roles import Role, role, vm_mode

RUN_DIR = pytest.StashKey["Path | None"]()
PER_RUN = pytest.StashKey[bool]()
LATEST = "latest"


def recording(config) -> bool:
    """Does this run write a results file? Only when asked (``--kernel`` asks)."""
    option = config.option
    return bool(vm_mode(config) or option.results_dir or option.results_json or config.getini(RESULTS_INI))


def run_dir(config) -> Path | None:
    """This run's directory (created on first use), or None when the run records nothing.

    Asked on the host or the xdist controller; workers get it with the route."""
    if RUN_DIR not in config.stash:
        config.stash[RUN_DIR] = _make(config)
    return config.stash[RUN_DIR]


def _make(config) -> Path | None:
    if role(config) in (Role.WORKER, Role.GUEST) or not recording(config):
        return None
    if config.option.results_dir:
        path = config.option.results_dir.resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    ini = config.getini(RESULTS_INI)
    base = (config.rootpath / ini) if ini else Path("results").resolve()
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
    try:
        path = base / name
        path.mkdir(parents=True)
        config.stash[PER_RUN] = True
    except OSError as exc:  # a read-only checkout must not stop the run, nor lose its files
        path = Path(tempfile.mkdtemp(prefix=f"bpf-harness-{name}-"))
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"cannot create {base / name} ({exc.strerror}); this run's files go to {path} "
                "(pass --results-dir to choose)"
            ),
            stacklevel=2,
        )
    return path


def mark_latest(config) -> None:
    """Point <base>/latest at this run's own directory (atomically; the newest run to finish wins)."""
    if not config.stash.get(PER_RUN, False):
        return
    path = run_dir(config)
    assert path is not None  # a per-run directory was made
    link = path.parent / LATEST
    tmp = path.parent / f".{LATEST}-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.name)
        os.replace(tmp, link)
    except OSError:
        pass  # a convenience only
