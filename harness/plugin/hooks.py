"""Hooks the harness's parts call on each other (registered with ``pytest_addhooks``).

A conftest or another plugin may implement them too::

    def pytest_bpf_vm_booted(config, boot):
        print(boot.kernel, boot.boot_seconds)
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(historic=True)
def pytest_bpf_kernels_resolved(config, kernels) -> None:
    """``--kernel`` specs resolved: ``kernels`` maps each name test ids carry to its
    ``harness.kernels.Kernel`` (catalog entry or local image). Called once, before
    configuration, in the host process (and in each xdist worker); historic, so a plugin
    registered later still hears it."""


@hookspec
def pytest_bpf_guest_args(config) -> list[str]:  # type: ignore[empty-body]
    """Arguments to add to the guest's pytest command line (which starts as the user's own);
    every implementation's list is used. Called on the host side before each boot."""


@hookspec(firstresult=True)
def pytest_bpf_cannot_run(item) -> str | None:
    """Why this test cannot run on its kernel (``item`` is a ``KernelItem``: ``item.case`` on
    ``item.kernel``), or None. A text fails the test with it, without sending it to the VM
    (nor booting one for it). Called on the host side before the item runs."""


@hookspec
def pytest_bpf_vm_booted(config, boot) -> None:
    """A VM is up and has collected: ``boot`` is a ``harness.vm.seam.BootRecord``.
    Called in the process that booted it, and again on the xdist controller when the worker
    that booted it finishes."""
