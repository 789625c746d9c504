"""The harness's parts, named once: what the plugin registers, a warm guest imports ahead, the zip ships.

- ``PLUGIN_PARTS``: the pytest plugin modules the entry point (``harness.plugin``)
  registers, in order. A new fixture module is added here and nowhere else: the
  fork server of a warm VM (``harness.guest.forkserver``) imports these once, before
  it forks a run.
- ``PACKAGES``: the distribution's packages, as ``[tool.setuptools] packages`` in
  pyproject.toml lists them (a test holds the two together); the guest imports
  them from the harness's module zip (``harness.vm.pyzip``).

- ``dependency_plugins()``: the pytest plugins that come with the harness's own
  requirements (pytest-xdist's, platformdirs'), which the guest imports before
  pytest starts (``protocol.Start.ahead``; ``harness.plugin.dispatch.ahead_plugins``
  leaves out those a run needs rewritten).

Names, and no imports at module level: the guest side reads this without importing the plugin.
"""

from __future__ import annotations

import functools

PLUGIN_PARTS = (
    "harness.plugin.options",  # the command line and ini options
    "harness.plugin.routing",  # one item per test and kernel, and its dispatch to a VM
    "harness.plugin.headers",  # kernel headers for bcc (--kernel-headers)
    "harness.bpf.gates",  # version and feature gates (markers)
    "harness.bpf.fixtures",  # bpffs, cgroup2, privileges, leak guard
    "harness.bpf.programs",  # bpf_object (C programs), bcc
)

PACKAGES = (
    "harness",
    "harness.bpf",
    "harness.cli",
    "harness.guest",
    "harness.kernels",
    "harness.plugin",
    "harness.report",
    "harness.vm",
)


@functools.cache
def dependency_plugins() -> frozenset[str]:
    """The entry-point plugin modules of the distributions the harness requires (host side).

    The guest imports them before pytest starts, so pytest does not rewrite their asserts: with
    no bytecode cache in the guest that took 1.5-3 s of every guest session under TCG (mostly
    platformdirs', whose plugin pytest rewrites with its whole package). The user's own plugins
    are not among them and are rewritten there as on the host."""
    from importlib import metadata  # noqa: PLC0415 - host side only

    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    try:
        requires = metadata.requires("bpf-vm-harness") or []
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return frozenset()
    ours = {canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r}
    return frozenset(
        ep.module
        for ep in metadata.entry_points(group="pytest11")
        if ep.dist is not None and canonicalize_name(ep.dist.name) in ours
    )
