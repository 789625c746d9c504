"""The pytest plugin (entry point ``bpf_vm_harness``): registers its parts; inert unless asked.

Without ``--kernel`` (and without a results option) it only provides the BPF
fixtures, markers and gates: no file is written, nothing is printed. With
``--kernel 6.1 --kernel 6.12`` every collected test runs once inside a VM of
each kernel, whatever kind of item it is, and never on the host unless it is
marked ``@pytest.mark.host``.

Its parts, each a plugin module of its own, are named in ``harness.parts``
(``PLUGIN_PARTS``): the options, routing, kernel headers for bcc, the BPF
toolkit's gates, fixtures and programs. The recorder (results file and summary)
is registered only in a run that records: never in a guest or an xdist worker.
The toolkit learns what it needs of the run (a guest? compile ahead? the
newest catalog kernel) from ``harness.bpf.context``, set here, never by
importing the plugin.
"""

from __future__ import annotations

import importlib
import os

import pytest

from harness.bpf import context
from harness.parts import PLUGIN_PARTS
from harness.plugin import hooks, rundir
from harness.plugin.roles import Role, records_results, role, vm_mode


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser, pluginmanager):
    # pytest_addoption is historic: each part registered here adds its own options. Under its
    # module's name, as pytest registers a module of -p or a conftest's pytest_plugins: naming
    # a part there again is then a no-op, not a second registration (an error) after an
    # "already imported so cannot be rewritten" warning
    for name in PLUGIN_PARTS:
        module = importlib.import_module(name)
        if not pluginmanager.is_registered(module):  # also with -p harness.bpf.fixtures
            pluginmanager.register(module, name)


def pytest_configure(config):
    config.addinivalue_line("markers", "host: run this test on the host, also under --kernel")
    if rundir.recording(config) and records_results(config):
        from harness.plugin import recorder  # noqa: PLC0415 - the results file's machinery

        recorder.register(config)
    config.stash[context.RUN] = toolkit_run(config)


def toolkit_run(config) -> context.Run:
    """What the BPF toolkit needs to know of this run."""
    guest = role(config) is Role.GUEST
    return context.Run(
        guest=guest,
        # the host (or each xdist worker) compiles for its guests; the controller runs nothing
        precompile=vm_mode(config) and role(config) is not Role.CONTROLLER,
        newest_kernel=None if guest else newest_catalog_kernel,
    )


def newest_catalog_kernel() -> str:
    """The newest series in the kernel catalog ("7.3")."""
    from harness.kernels.catalog import load_catalog  # noqa: PLC0415 - only when a test has a gate
    from harness.versions import kernel_order  # noqa: PLC0415

    return max((entry.series for entry in load_catalog().entries), key=kernel_order)


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
