"""What the toolkit needs to know of the run it serves, told by the plugin that runs the tests.

In a plain pytest run on this kernel the toolkit (fixtures, gates, programs)
needs to be told nothing. A plugin that runs the tests elsewhere
(``harness.plugin``: each test in a VM) says so once, in its ``pytest_configure``::

    config.stash[context.RUN] = context.Run(guest=True)

The toolkit reads it with ``context.of(config)`` and never asks the plugin
itself: it stays usable without any VM, the plugin or the kernel catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Run:
    # the tests run here for a host, inside a VM: BPF objects come from the host's cache (no
    # clang here) and the gates' catalog check was done on the host
    guest: bool = False
    # the tests run elsewhere (in VMs) after collection: compile every ``*.bpf.c`` near the
    # collected tests now, before they run, so the guests only load
    precompile: bool = False
    # the newest kernel the run could boot ("7.3"): a gate above it can never run, an error.
    # Called only when a collected test has a gate (reading a catalog costs); None: no check
    newest_kernel: Callable[[], str] | None = None


RUN = pytest.StashKey[Run]()
LOCAL = Run()


def of(config) -> Run:
    """The run as the plugin described it, else a plain local run."""
    return config.stash.get(RUN, LOCAL)
