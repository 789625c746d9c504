"""The guest agent: inside the VM, it prepares the system and runs tests on request.

vng starts it as ``python -B -m harness.guest`` (harness.guest.__main__) with the
host's root mounted read-only. It takes the protocol off the standard descriptors (so a test that
prints cannot corrupt it), mounts bpffs and cgroup v2, then runs one pytest
session with the user's own arguments, from the host's directory, rootdir, ini
file and collection arguments. That session collects exactly the cases the
host asked for, under the host's ids (so plugins, ini options, conftest options
and doctest flags are the user's, and any layout gives the same ids), and its
run loop waits for ``Run`` messages instead of iterating over the items. When the host allows it (``Run.ahead``)
the agent starts the next test as soon as it has sent a test's reports, while
the host is still replaying them; that test's teardown waits for the host's
Run for it, which names the test after it. After each test it reads the new
kernel log records and turns a splat into a failure of that test.

Inside, a test is called what the host calls it: once collected, each item's
node id (and so ``PYTEST_CURRENT_TEST``) and name carry the kernel
(``t.py::test_a[6.12.117]``, harness.ids), so artifacts and ``tmp_path`` named
after them differ from kernel to kernel. The messages keep the case ids
(``t.py::test_a``), which the host's items share across kernels.

What only the host does is switched off here: selecting (``-k``, ``-m``,
``--lf``, ...), distributing (``-n``), stopping early (``-x``) and writing
reports (``--junitxml``).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys

import pytest

from harness import ids, protocol, pytestinternals, reportattrs, splat

CASE = pytest.StashKey[str]()  # an item's id as collected, without the kernel: what the messages name

# option dest -> value that leaves the job to the host
HOST_ONLY = {
    "keyword": "",
    "markexpr": "",
    "deselect": [],
    "lf": False,
    "failedfirst": False,
    "newfirst": False,
    "stepwise": False,
    "stepwise_skip": False,
    "cacheclear": False,
    "numprocesses": None,
    "dist": "no",
    "tx": [],
    "exitfirst": False,
    "maxfail": 0,
    "xmlpath": None,
}


class Channel:
    def __init__(self):
        self._in = os.fdopen(os.dup(0), "rb")
        self._out = os.fdopen(os.dup(1), "wb")
        # Tests get /dev/null as stdin and the console (stderr) as stdout.
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(2, 1)

    def send(self, msg) -> None:
        self._out.write(protocol.encode(msg))
        self._out.flush()

    def receive(self):
        """The next message, or None when the host closed the channel."""
        line = self._in.readline()
        return protocol.decode(line) if line else None

    def input_fd(self) -> int:
        """The descriptor messages arrive on, for a reader that must not buffer (the fork server)."""
        return self._in.fileno()

    def reopen_input(self) -> None:
        """A buffered reader of its own on the same descriptor (a forked child's)."""
        self._in = os.fdopen(os.dup(self._in.fileno()), "rb")


class KernelLog:
    """New records of /dev/kmsg since the last call of ``new_lines``."""

    def __init__(self):
        self._fd: int | None
        try:
            self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            self._fd = None

    def new_lines(self) -> list[str]:
        lines: list[str] = []
        while self._fd is not None:
            try:
                record = os.read(self._fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten before we read it
                    continue
                raise
            # "prio,seq,usec,flags;text\n continuation lines"
            head, _, text = record.partition(";")
            lines.extend(text.rstrip("\n").split("\n"))
        return lines


def name_for_kernel(item: pytest.Item, kernel: str) -> None:
    """Give the item the id and name its KernelItem has on the host (harness.plugin.items).

    The id changes for every item (``pytestinternals.set_nodeid``: pytest reads it
    for ``PYTEST_CURRENT_TEST`` and the reports). The name changes only for
    pytest's own items, whose use of it is known: a function finds its object
    by ``originalname``, a unittest method
    its TestCase by name (given the method's name here), a doctest runs its
    parsed examples. Other plugins' items keep their name, as their runtest
    may look their test up by it (pytest-cpp's do)."""
    item.stash[CASE] = item.nodeid
    nodeid = ids.with_kernel(item.nodeid, kernel)
    pytestinternals.set_nodeid(item, nodeid)
    if not isinstance(item, pytest.Function | pytest.DoctestItem):
        return
    cls = getattr(item, "cls", None)
    # a TestCase's module imported unittest; importing it here would cost each boot 0.3 s
    unittest = sys.modules.get("unittest")
    if (
        isinstance(item, pytest.Function)
        and isinstance(cls, type)
        and unittest is not None
        and issubclass(cls, unittest.TestCase)
    ):
        method = item.originalname
        pytestinternals.set_testcase_factory(item, lambda: cls(method))
    item.name = ids.with_kernel(item.name, kernel)
    item.keywords[item.name] = True  # as the host's item has both names


def case_of(item: pytest.Item) -> str:
    """The id the host's messages name the item by."""
    return item.stash.get(CASE, item.nodeid)


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def mark(what: str) -> None:
    """A step of the guest's start-up on the console, at the guest's uptime: where a slow start goes."""
    print(f"harness-guest: {what} at uptime {uptime():.2f} s", file=sys.stderr, flush=True)


def mounted_types() -> dict[str, str]:
    with open("/proc/self/mounts") as f:
        return {parts[1]: parts[2] for parts in (line.split() for line in f)}


def prepare() -> None:
    """bpffs at /sys/fs/bpf and cgroup v2 at /sys/fs/cgroup, as on a modern host (through libc:
    two ``mount`` processes took 0.4 s of a TCG boot)."""
    from harness.bpf import fixtures  # noqa: PLC0415 - the session imports it next, as a plugin part

    mounts = mounted_types()
    wanted = [("bpf", "/sys/fs/bpf"), ("cgroup2", "/sys/fs/cgroup")]
    for fstype, path in wanted:
        if mounts.get(path) != fstype:
            os.makedirs(path, exist_ok=True)
            fixtures.mount(fstype, path)


class NextItem:
    """``nextitem`` for a test that runs ahead: the item after it, known once the host says.

    pytest asks for it only in the test's teardown (``teardown_exact`` evaluates
    ``nextitem and nextitem.listchain()``; plugins may read its attributes); the
    first such use reads the host's next message. ``Run`` for the test that runs
    ahead gives the real next item (or None); ``Quit``, a closed channel or a
    Run for another test give None, so everything is torn down."""

    def __init__(self, channel: Channel, items: dict, running: str):
        self._channel = channel
        self._items = items
        self._running = running
        self._answer: object = _UNREAD
        self._item = None

    def answer(self):
        """The host's message after the test that ran ahead (read now if pytest never asked)."""
        if self._answer is _UNREAD:
            self._answer = msg = self._channel.receive()
            if isinstance(msg, protocol.Run) and msg.nodeid == self._running and msg.next:
                self._item = self._items.get(msg.next)
        return self._answer

    def resolve(self):
        self.answer()
        return self._item

    def __bool__(self) -> bool:
        return self.resolve() is not None

    def __getattr__(self, name: str):
        item = self.resolve()
        if item is None:
            raise AttributeError(f"{name}: there is no next test")
        return getattr(item, name)

    def __repr__(self) -> str:
        state = "unread" if self._answer is _UNREAD else repr(self._item)
        return f"<next item after {self._running}: {state}>"


_UNREAD = object()


class Agent:
    """A pytest plugin for the guest session."""

    def __init__(self, channel: Channel, start: protocol.Start):
        self.channel = channel
        self.kernel = start.kernel
        self.start = start
        self.cases = set(start.collect)
        self.kmsg = KernelLog()
        self.reports: list = []
        self.collect_errors: list[str] = []
        self.ready_sent = False
        self.targets: set[str] = set()
        self.seen: list[str] = []  # every id collected here, the host's cases among them
        self.running_ahead = False  # the current test started before the host's Run for it

    @pytest.hookimpl(tryfirst=True)
    def pytest_load_initial_conftests(self, early_config):
        """The host's entry-point plugins, imported where the host's pytest imports them.

        That is after the assertion rewriting hook is installed and their packages are
        marked for it (as pytest marks every module of a plugin's distribution), and
        before the first conftest: a conftest that names one of their modules in
        ``pytest_plugins`` finds it rewritten, as on the host, and pytest has no
        "already imported" to warn about. Imported before ``pytest.main``, they were
        neither."""
        names = self.start.plugins or []
        if self.start.initial is not None:
            # The first conftests are found from the positional arguments pytest saw before it
            # knew every option: here the plugins' options are not known yet, so their values
            # (`--results-dir DIR`) would look like paths and hide the project's conftest
            # (and its options). Start from the host's own arguments instead.
            early_config.known_args_namespace.file_or_dir = list(self.start.initial)
        hook = early_config.pluginmanager.rewrite_hook
        tops = {name.split(".")[0] for name in names} - {name for name in sys.modules if "." not in name}
        if tops:
            hook.mark_rewrite(*sorted(tops))
        for name in names:
            module = importlib.import_module(name)
            if not early_config.pluginmanager.is_registered(module):
                early_config.pluginmanager.register(module)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        mark("pytest configured")
        start = self.start
        if start.initial is not None and start.files is not None:
            # the host's own starting points, from the same directory: the same ids, whatever the
            # rootdir (above or below), testpaths or files outside the rootdir
            config.args = list(start.initial)
            self.targets = {os.path.normpath(path) for path in start.files}
        else:  # the cases alone (an older caller): ids relative to the rootdir
            config.args = [str(config.rootpath / case) for case in start.collect]
            self.targets = {os.path.normpath(config.rootpath / case.split("::")[0]) for case in start.collect}
        for dest, value in HOST_ONLY.items():
            if hasattr(config.option, dest):
                setattr(config.option, dest, value)
        if config.option.basetemp:
            # the results directory is writable from every guest: there, two kernels would
            # share (and clear, as pytest clears it) one basetemp; as xdist gives each worker its own
            config.option.basetemp = os.path.join(config.option.basetemp, self.kernel)
            with contextlib.suppress(OSError):  # not writable: pytest says so where a test needs it
                os.makedirs(os.path.dirname(config.option.basetemp), exist_ok=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path):
        """Only the files of the cases and the directories on the way to them.

        pytest lists each directory from the rootdir down and makes a collector
        for every entry before it keeps the ones the arguments name: each a stat
        or more over 9p (collecting one file at the top of this repository took
        1.7 s of a cold start under TCG). Another plugin may still ignore what this
        keeps (None lets the other implementations decide)."""
        path = str(collection_path)
        for target in self.targets:
            if target == path or target.startswith(path + os.sep) or path.startswith(target + os.sep):
                return None
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items):
        """Every item named for this kernel, before the other implementations run: the guest's
        own conftest sees the ids the host's does (a list of expected failures per kernel
        written with kernel ids marks the same tests in both)."""
        # only the cases the host asked for: the arguments may name more (a directory, a file of
        # which -k kept one test); an item the host did not collect is never run here
        self.seen = [item.nodeid for item in items]
        items[:] = [item for item in items if item.nodeid in self.cases]
        for item in items:
            name_for_kernel(item, self.kernel)
        return (yield)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext}")

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session):
        """Ready once collection is over, a usage error of the collection (an argument that
        names nothing here) among its errors."""
        try:
            return (yield)
        except pytest.UsageError as exc:
            self.collect_errors.append(f"usage error: {exc}")
            raise
        finally:
            self._ready(session)

    def _ready(self, session) -> None:
        uname = os.uname()
        nodeids = [case_of(item) for item in session.items]
        nearest = {}
        for case in self.cases.difference(nodeids):  # the host's error names what came closest
            import difflib  # noqa: PLC0415 - only for a case the guest did not collect

            close = difflib.get_close_matches(case, self.seen, n=1, cutoff=0.0)
            if close:
                nearest[case] = close[0]
        self.channel.send(
            protocol.Ready(
                release=uname.release,
                version=uname.version,
                uptime=uptime(),
                nodeids=nodeids,
                collect_errors=self.collect_errors,
                rootdir=str(session.config.rootpath),
                nearest=nearest,
            )
        )
        self.ready_sent = True
        mark("collected")
        # for the console log: what the guest had to import before the first test
        ours = sorted(name for name in sys.modules if name.split(".")[0] == "harness")
        print(
            f"harness-guest: {len(sys.modules)} modules imported, {len(ours)} of the harness: "
            f"{' '.join(ours)}",
            file=sys.stderr,
            flush=True,
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session) -> bool:
        """Run what the host asks for; with ``Run.ahead``, start the next test before its Run.

        Under TCG pytest's own setup/call/teardown of a trivial test costs about
        11 ms here, and the host needs a similar time to replay a test's reports
        and reach the next one; running ahead overlaps the two. The test that
        runs ahead is torn down only once its Run names the test after it (see
        NextItem), so fixtures are set up and torn down exactly as without it."""
        items = {case_of(item): item for item in session.items}
        msg = self.channel.receive()
        ran_ahead: list[dict] | None = None  # reports of the test msg names, if it already ran
        while isinstance(msg, protocol.Run):
            item = items.get(msg.nodeid)
            if item is None:
                self.channel.send(protocol.Fatal(f"Run for {msg.nodeid}, which the guest did not collect"))
                return True
            nextitem = items.get(msg.next) if msg.next else None
            if ran_ahead is None:
                ran_ahead = self._run_test(item, nextitem)
            self.channel.send(protocol.Done(nodeid=msg.nodeid, reports=ran_ahead))
            ran_ahead = None
            if not (msg.ahead and nextitem is not None):
                msg = self.channel.receive()
                continue
            next_case = case_of(nextitem)  # as the host names it
            lazy = NextItem(self.channel, items, next_case)
            self.running_ahead = True
            reports = self._run_test(nextitem, lazy)
            self.running_ahead = False
            msg = lazy.answer()
            if isinstance(msg, protocol.Run) and msg.nodeid == next_case:
                ran_ahead = reports
            elif msg is None or isinstance(msg, protocol.Quit):
                print(
                    f"harness-guest: {next_case} ran ahead, but the host stopped before it; "
                    "its reports are discarded",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                self.channel.send(
                    protocol.Fatal(
                        f"protocol out of step: {next_case} was announced as the next test "
                        f"(Run.next, with ahead) and ran ahead, but the host then sent {msg!r}"
                    )
                )
                return True
        if msg is not None and not isinstance(msg, protocol.Quit):
            self.channel.send(protocol.Fatal(f"expected Run or Quit, got {msg!r}"))
        return True

    def _run_test(self, item, nextitem) -> list[dict]:
        """pytest's protocol for one test, a kernel splat failing it; its serialised reports."""
        self.reports = []
        self.kmsg.new_lines()
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        found = splat.find(self.kmsg.new_lines())
        if found:
            self._fail_with_splat(found)
        config = item.config
        return [
            protocol.compact_report(r) or config.hook.pytest_report_to_serializable(config=config, report=r)
            for r in self.reports
        ]

    def pytest_runtest_logreport(self, report):
        self.reports.append(report)

    def _fail_with_splat(self, text: str) -> None:
        """A splat fails the test's call phase (or setup, if it never got there)."""
        target = next((r for r in self.reports if r.when == "call"), self.reports[0])
        for report in self.reports:
            reportattrs.set_splat(report, text)
        if target.passed:
            target.outcome = "failed"
            target.longrepr = f"kernel splat during the test on {self.kernel}:\n{text}"


def session(channel: Channel, start, extra: tuple = ()) -> int:
    """One pytest session for the host's Start; returns once the host sends Quit (or goes away)."""
    if not isinstance(start, protocol.Start):
        channel.send(protocol.Fatal(f"expected Start, got {start!r}"))
        return 2
    for name in start.ahead:  # before pytest's rewrite hook exists (protocol.Start.ahead)
        importlib.import_module(name)
    agent = Agent(channel, start)
    args = list(start.args)
    if start.plugins is not None:
        args.insert(0, "--disable-plugin-autoload")
    code = pytest.main(args, plugins=[agent, *extra])
    if not agent.ready_sent:
        channel.send(
            protocol.Fatal(
                f"pytest exited with status {int(code)} before collecting in the guest; "
                "its output is in the console log"
            )
        )
    return 0
