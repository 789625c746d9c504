"""The pytest plugin (entry point ``bpf_vm_harness``): registers its parts; inert unless asked.

Without ``--kernel`` (and without a results option) it only provides the BPF
fixtures, markers and gates: no file is written, nothing is printed. With
``--kernel 6.1 --kernel 6.12`` every collected test runs once inside a VM of
each kernel, whatever kind of item it is, and never on the host unless it is
marked ``@pytest.mark.host``.

Parts, each a plugin module of its own:

    harness.plugin.options    the command line and ini options
    harness.plugin.routing    one item per test and kernel, and its dispatch to a VM
    harness.plugin.headers    kernel headers for bcc (--kernel-headers), fetched before the VMs boot
    harness.plugin.recorder   the results file and the cases x kernels summary (only in a
                              run that records: never imported in a guest or an xdist worker)
    harness.bpf.gates         version and feature gates (markers)
    harness.bpf.fixtures      bpffs, cgroup2, privileges, leak guard
"""

from __future__ import annotations

import importlib
import os

import pytest

from harness.plugin import hooks, rundir
from harness.plugin.roles import records_results

PARTS = (
    "harness.plugin.options",
    "harness.plugin.routing",
    "harness.plugin.headers",
    "harness.bpf.gates",
    "harness.bpf.fixtures",
    "harness.bpf.programs",
)


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser, pluginmanager):
    # pytest_addoption is historic: each part registered here adds its own options. Under its
    # module's name, as pytest registers a module of -p or a conftest's pytest_plugins: naming
    # a part there again is then a no-op, not a second registration (an error) after an
    # "already imported so cannot be rewritten" warning
    for name in PARTS:
        module = importlib.import_module(name)
        if not pluginmanager.is_registered(module):  # also with -p harness.bpf.fixtures
            pluginmanager.register(module, name)


def pytest_configure(config):
    config.addinivalue_line("markers", "host: run this test on the host, also under --kernel")
    if rundir.recording(config) and records_results(config):
        from harness.plugin import recorder  # noqa: PLC0415 - the results file's machinery

        recorder.register(config)


@pytest.fixture(scope="session")
def bpf_kernel(request) -> str:
    """The kernel this test runs on: its name under --kernel (in the VM), else the host's release."""
    return request.config.getoption("harness_guest_kernel", None) or os.uname().release


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed on a bpf() error carries its errno and verifier log as data."""
    from harness import reportattrs  # noqa: PLC0415
    from harness.bpf.libbpf import BPFError  # noqa: PLC0415

    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, BPFError):
        reportattrs.set_bpf_error(report, call.excinfo.value)
    return report
