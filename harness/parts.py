"""The harness's parts, named once: what the plugin registers, a warm guest imports ahead, the zip ships.

- ``PLUGIN_PARTS``: the pytest plugin modules the entry point (``harness.plugin``)
  registers, in order. A new fixture module is added here and nowhere else: the
  fork server of a warm VM (``harness.guest.forkserver``) imports these once, before
  it forks a run.
- ``PACKAGES``: the distribution's packages, as ``[tool.setuptools] packages`` in
  pyproject.toml lists them (a test holds the two together); the guest imports
  them from the harness's module zip (``harness.vm.pyzip``).

Names only, no imports: the guest side reads this without importing the plugin.
"""

from __future__ import annotations

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
