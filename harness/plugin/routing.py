"""Under ``--kernel``: one item per test and kernel, run in a VM of that kernel and nowhere else.

After collection, every item the host collected (a function, a method, a
``unittest.TestCase`` method, a doctest, an item of another plugin) is replaced
by one ``KernelItem`` per kernel, whose id carries the kernel (``harness.ids``).
A KernelItem never runs on the host: its protocol hands the case to
``harness.plugin.dispatch``, which runs it in the VM and replays the guest's
reports as the item's own. Only items marked ``@pytest.mark.host`` stay as they
are and run here; an item that is neither (added behind the harness's back) is
an error, never a silent run on the host kernel.

Ids carry the exact catalog name (``t.py::test_a[6.1.192-3]``), whatever alias
``--kernel`` was given. An id given on the command line with a kernel selects
that test on that kernel only; the kernel may be written as it was given to
``--kernel`` (``--kernel 6.1.192 't.py::test_a[6.1.192]'``, as older reproduce
lines read).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import threading
from dataclasses import dataclass

import pytest

from harness import ids, pytestinternals
from harness.plugin import options, rundir
from harness.plugin.items import KernelItem
from harness.plugin.roles import Role, records_results, role, vm_mode

KERNELS = pytest.StashKey[dict]()  # name -> harness.kernels.Kernel, in --kernel order
ALIASES = pytest.StashKey[dict]()  # --kernel value -> the exact name it resolved to
ROUTE = pytest.StashKey["Route"]()
RUNNER = pytest.StashKey["object"]()  # harness.plugin.dispatch.Runner
BOOTS = pytest.StashKey[list]()  # BootRecords of this run, for the summary
KEYWORD = pytest.StashKey[str]()  # -k, which routing applies (and gives back to pytest afterwards)
ROUTE_KEY = "bpf_harness_route"
BOOTS_KEY = "bpf_harness_boots"


@dataclass(frozen=True)
class Route:
    """What the controller decided for the whole run (xdist workers get a copy)."""

    guest_args: list[str]  # the user's pytest arguments, for the guest's pytest
    initial: list[str]  # what pytest collects from (config.args, kernels taken off ids), for the guest's
    only: dict[str, list[str]]  # case -> kernels, for ids given with a kernel
    run_dir: str | None = None


# -- kernels ------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Resolve (and fetch) kernels before any worker starts: errors are usage errors."""
    if role(config) in (Role.HOST, Role.CONTROLLER):
        options.check_path_values(config)
    if not vm_mode(config):
        return None
    from harness import kernels  # noqa: PLC0415 - requests etc., only under --kernel
    from harness.vm import preflight  # noqa: PLC0415

    absent = preflight.missing()
    if absent:
        raise pytest.UsageError(preflight.message(absent))
    resolved, aliases = {}, {}
    try:
        for spec in config.option.bpf_kernels:
            kernel = kernels.resolve(
                spec,
                fetch=not config.option.offline,
                debian_mirror=config.option.debian_mirror,
                mainline_mirror=config.option.mainline_mirror,
                # xdist workers only read the cache the controller filled
                progress=role(config) is not Role.WORKER,
            )
            resolved[kernel.name] = kernel
            aliases[spec.strip()] = kernel.name
    except kernels.KernelError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[KERNELS] = resolved
    config.stash[ALIASES] = aliases
    config.hook.pytest_bpf_kernels_resolved.call_historic(kwargs=dict(config=config, kernels=resolved))
    return None


def pytest_configure(config):
    if not vm_mode(config):
        return
    config.stash[BOOTS] = []
    if role(config) is Role.WORKER:
        config.stash[ROUTE] = Route(**config.workerinput[ROUTE_KEY])
    else:
        config.stash[ROUTE] = _route(config)
    if role(config) in (Role.HOST, Role.WORKER) and not config.option.collectonly:
        from harness.plugin.dispatch import Runner  # noqa: PLC0415 - the VM side, only when tests run

        config.stash[RUNNER] = Runner(config, config.stash[KERNELS], config.stash[ROUTE])
    # SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so VMs are reaped
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _route(config) -> Route:
    """Strip kernels from ids on the command line (pytest collects the case), noting the choice."""
    exact = {name: name for name in config.stash[KERNELS]}
    written = {**config.stash.get(ALIASES, {}), **exact}  # an exact name wins over an alias
    args: list[str] = []
    only: dict[str, list[str]] = {}
    for arg in config.args:
        case, kernel = ids.split(arg, written)
        if kernel is not None:
            only.setdefault(_as_nodeid(config, case), []).append(written[kernel])
        if case not in args:
            args.append(case)
    config.args[:] = args
    run_dir = rundir.run_dir(config)
    # the guest's environment is not ours (vng passes none of it): PYTEST_ADDOPTS goes as arguments
    addopts = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    return Route(
        guest_args=[*addopts, *config.invocation_params.args],
        initial=list(args),
        only=only,
        run_dir=str(run_dir) if run_dir else None,
    )


def _as_nodeid(config, arg: str) -> str:
    """A command-line id (relative to the invocation directory) as pytest's node id."""
    path, sep, rest = arg.partition("::")
    try:
        rel = (config.invocation_params.dir / path).resolve().relative_to(config.rootpath)
    except ValueError:
        return arg
    return rel.as_posix() + sep + rest


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: each worker routes as the controller decided."""
    route = node.config.stash.get(ROUTE, None)
    if route is not None:
        node.workerinput[ROUTE_KEY] = dataclasses.asdict(route)


# -- items --------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    if not vm_mode(config):
        return
    only = config.stash[ROUTE].only
    host = [item for item in items if item.get_closest_marker("host")]
    routed = [
        KernelItem.for_case(item, kernel)
        for kernel in config.stash[KERNELS]  # kernel by kernel: each boots once
        for item in items
        if not item.get_closest_marker("host") and kernel in only.get(item.nodeid, [kernel])
    ]
    # the header's "collected N items / M deselected" counts items, which are now per kernel
    pytestinternals.count_collected(config, len(host) + len(routed) - len(items))
    items[:] = host + routed
    selects = _keyword_selection(config)
    if selects is not None:
        chosen = [item for item in items if selects(item)]
        if len(chosen) < len(items):
            kept = set(map(id, chosen))
            config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
            items[:] = chosen


def _keyword_selection(config):
    """``-k`` as on the host, and by kernel, or None without ``-k``: a name in the expression matches
    a test as pytest matches it (a substring of its own names, markers and keywords) or names the
    kernel as ``--kernel`` does (``6.1``, ``6.1.192``, ``6.1.192-3``, or the alias given). So ``-k 2``
    selects what it selects on the host, not every test of kernel 6.1.192-3. pytest's own ``-k``
    (after this hook, on the kernel items) is turned off until collection ends.
    """
    expression = config.option.keyword.strip()
    if not expression:
        return None
    matches = pytestinternals.keyword_expression(expression)
    if matches is None:
        return None  # pytest's own -k says what is wrong with it, as a usage error
    config.stash[KEYWORD] = expression
    config.option.keyword = ""
    aliases = config.stash[ALIASES]

    def selects(item: pytest.Item) -> bool:
        if not isinstance(item, KernelItem):
            return matches(item, lambda name: False)
        kernel = item.kernel
        return matches(item.case, lambda name: aliases.get(name) == kernel or ids.names_kernel(name, kernel))

    return selects


def pytest_collection_finish(session):
    if KEYWORD in session.config.stash:  # -k as given, for whoever reads it after collection
        session.config.option.keyword = session.config.stash[KEYWORD]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    config = item.config
    if not vm_mode(config) or item.get_closest_marker("host"):
        return None
    from harness.plugin import dispatch  # noqa: PLC0415

    if isinstance(item, KernelItem):
        config.stash[RUNNER].run(item, nextitem)
    else:
        dispatch.refuse(
            item,
            f"{item.nodeid} has no kernel: it appeared after the harness gave "
            "every collected test one item per kernel (added by another plugin?). "
            "It was not run; to run it on the host, mark it @pytest.mark.host",
        )
    return True


def pytest_report_teststatus(report, config):
    if getattr(report, "vm_lost", None) and report.when == "call":
        return "vm lost", "L", ("VM LOST", {"red": True})
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With -n, schedule by kernel (unless the user chose another --dist than the default)."""
    if not vm_mode(config) or config.option.dist != "load":
        return None
    from harness.plugin.scheduler import KernelScheduling  # noqa: PLC0415 - xdist is optional

    kernels = list(config.stash[KERNELS])
    shards = max(1, len(config.getvalue("tx")) // len(kernels))
    return KernelScheduling(config, log, kernels=kernels, shards=shards)


# -- boots and the end of the run ---------------------------------------------


def pytest_bpf_vm_booted(config, boot):
    if BOOTS in config.stash:
        config.stash[BOOTS].append(boot)


def pytest_sessionfinish(session):
    config = session.config
    runner = config.stash.get(RUNNER, None)
    if runner is not None:
        # interrupted: the test in flight will not finish, so there is nothing to wait for
        runner.close(graceful=session.exitstatus != pytest.ExitCode.INTERRUPTED)
    if hasattr(config, "workeroutput") and BOOTS in config.stash:
        config.workeroutput[BOOTS_KEY] = [dataclasses.asdict(b) for b in config.stash[BOOTS]]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: what a finished worker booted, told again here."""
    from harness.vm.seam import BootRecord  # noqa: PLC0415

    config = node.config
    for data in getattr(node, "workeroutput", {}).get(BOOTS_KEY, []):
        config.hook.pytest_bpf_vm_booted(config=config, boot=BootRecord(**data))


def pytest_terminal_summary(terminalreporter, config):
    boots = config.stash.get(BOOTS, [])
    if not boots or not records_results(config):
        return
    terminalreporter.section("kernels")
    for b in boots:
        terminalreporter.write_line(
            f"{b.kernel:<12} {b.release:<28} {b.accel.upper()}  boot {b.boot_seconds:6.1f} s  {b.console_log}"
        )
