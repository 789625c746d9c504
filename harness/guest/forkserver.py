"""Inside a warm VM: a parent that imported pytest once forks a fresh child per run.

The agent (``python -m harness.guest``) becomes this server when the host's
first message is ``Serve`` (``pytest --reuse-vm``). The parent imports what
every run needs (pytest and its plugins, the modules the host names in
``Serve.preload``: the harness plugin, libbpf through ctypes), notes the
kernel objects that exist right after boot (harness.guest.cleanup), and
waits. For each run the host sends ``Fork``: the child changes to the run's
directory, takes the run's ``Start`` and runs one pytest session exactly as a
one-shot agent would (harness.guest.agent), so the user's test files are
imported fresh (an edit on the host is seen by the next run) and no Python
state crosses runs. When the child exits, the parent removes what the run
left (harness.guest.cleanup) and answers ``Cleaned``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import os
import sys
import time
import traceback

from harness import protocol, pytestinternals
from harness.bpf import libbpf
from harness.guest import agent, cleanup

PR_SET_CHILD_SUBREAPER = 36
# Imported lazily by pytest and its usual plugins in each run (tomllib for the ini file,
# pdb for --pdb's plugin, execnet for xdist): about 4 s of a warm run's start-up under TCG.
PRELOAD = ("tomllib", "pdb", "queue", "email.parser", "code", "codeop", "cmd", "execnet")


def freeze_distributions() -> None:
    """Read the installed distributions' metadata once, here, for every run.

    Each run's pytest lists the distributions twice (plugin entry points, and
    the files of plugins to mark for assertion rewriting) and reads their
    metadata files: 79 reads and 20 directory scans over 9p, 18 of the 50 s
    of a profiled warm run's start-up under TCG on a loaded host. The
    installed set cannot change under a warm VM: the settings key covers the
    host's site-packages directories (harness.vm.warm.settings_key).
    """
    from importlib import metadata  # noqa: PLC0415

    dists = list(metadata.distributions())
    for dist in dists:
        dist.read_text = functools.cache(dist.read_text)  # type: ignore[method-assign]
        dist.metadata  # noqa: B018 - read now, inherited by each child
        if any(ep.group == "pytest11" for ep in dist.entry_points):
            dist.files  # noqa: B018 - what pytest marks for assertion rewriting
    everything = metadata.distributions

    def distributions(**kwargs):
        return iter(dists) if not kwargs else everything(**kwargs)

    metadata.distributions = distributions


def _read_message(fd: int):
    """One message read byte by byte, so nothing of the child's input is buffered here."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return None
        line += chunk
    return protocol.decode(bytes(line))


def _child(channel: agent.Channel, fork: protocol.Fork, boot_cwd: str) -> int:
    os.setpgid(0, 0)
    os.chdir(fork.cwd)
    if sys.path and sys.path[0] == boot_cwd:  # `python -m` put the boot's directory first
        sys.path[0] = fork.cwd
    os.environ.pop("HARNESS_RESULTS_DIR", None)
    os.environ.update(fork.env)
    channel.reopen_input()  # a buffer of its own: the parent reads the same descriptor unbuffered
    profile = os.environ.get("HARNESS_FORK_PROFILE")
    if not profile:
        return agent.session(channel, channel.receive(), extra=(Timeline(),))
    import cProfile  # noqa: PLC0415

    with cProfile.Profile() as prof:
        code = agent.session(channel, channel.receive(), extra=(Timeline(),))
    prof.dump_stats(profile)
    return code


class Timeline:
    """Where a warm run's start-up goes, on the console: the next cut is chosen from these."""

    def __init__(self):
        self.forked = time.monotonic()

    def _mark(self, what: str) -> None:
        print(
            f"bpf-harness fork server: {what} {time.monotonic() - self.forked:.2f} s after fork",
            file=sys.stderr,
        )

    def pytest_configure(self):
        self._mark("configured")

    def pytest_collection_finish(self):
        self._mark("collected")

    def pytest_unconfigure(self):
        self._mark("session over")


def serve(channel: agent.Channel, request: protocol.Serve) -> int:
    """Run the fork server until the host closes the channel (the VM then powers off)."""
    # pytest imports its own plugins when each run's config is made: over 9p under TCG
    # each import is several round trips. (The user's installed plugins stay for each child
    # to load: pytest warns about plugin modules imported before it could rewrite them.)
    for name in (*pytestinternals.builtin_plugin_modules(), *PRELOAD):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    freeze_distributions()

    # what the host's plugin is made of, named by the host: the guest side imports nothing of it
    for name in request.preload:
        importlib.import_module(name)
    libbpf.libbpf_version()  # dlopen now, not in each child
    # orphans of a run (setsid, double fork) become our children, not init's: clean() finds them
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    boot_cwd = os.getcwd()
    cleanup.mount_lower()
    baseline = cleanup.snapshot()
    uname = os.uname()
    channel.send(
        protocol.Serving(
            release=uname.release,
            version=uname.version,
            uptime=agent.uptime(),
            baseline={kind: len(ids) for kind, ids in baseline.ids.items()},
        )
    )
    fd = channel.input_fd()
    while True:
        msg = _read_message(fd)
        if msg is None:
            return 0
        if not isinstance(msg, protocol.Fork):
            continue  # a Quit for a run that never forked: nothing to end
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = _child(channel, msg, boot_cwd)
            except BaseException:  # noqa: BLE001 - the host must hear why the run ended
                channel.send(protocol.Fatal(traceback.format_exc()))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        cleaned = cleanup.clean(baseline, pid)
        cleaned.status = os.waitstatus_to_exitcode(status)
        channel.send(cleaned)
