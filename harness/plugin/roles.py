"""Which role this pytest process plays: the one answer every part asks for.

host        a plain pytest run, no xdist: it runs tests (and VMs) itself
controller  the xdist controller: schedules, runs nothing, records results
worker      an xdist worker: collects and runs (and boots VMs)
guest       the pytest session inside a VM (``--harness-guest-kernel``)
"""

from __future__ import annotations

import enum


class Role(enum.Enum):
    HOST = "host"
    CONTROLLER = "controller"
    WORKER = "worker"
    GUEST = "guest"


def role(config) -> Role:
    if config.getoption("harness_guest_kernel", None):
        return Role.GUEST
    if hasattr(config, "workerinput"):
        return Role.WORKER
    # as xdist decides in its pytest_configure (which may not have run yet)
    if config.getoption("dist", "no") != "no" and not config.option.collectonly:
        return Role.CONTROLLER
    return Role.HOST


def vm_mode(config) -> bool:
    """``--kernel`` was given and this process is on the host side of the VMs."""
    return bool(config.getoption("bpf_kernels", None)) and role(config) is not Role.GUEST


def records_results(config) -> bool:
    """The process that writes the results file and the summary (never a worker or a guest)."""
    return role(config) in (Role.HOST, Role.CONTROLLER)
