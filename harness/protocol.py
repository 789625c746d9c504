"""Messages between the host (harness.vm) and the guest (harness.guest), and their one serialisation.

Each message is a dataclass; on the wire it is one JSON object per line,
``{"type": "Run", "v": 1, "nodeid": "...", "next": null}``, so a stray
character from a test can never be mistaken for a message (the agent moves the
protocol off the standard descriptors before any test runs).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

# 4: Start.plugins, Run.ahead; 5: Start.initial and files, Ready.rootdir and nearest; 6: Serve.preload;
# 7: compact reports in Done, Start.ahead
VERSION = 7


class ProtocolError(Exception):
    """The other side sent something that is not a message of this version."""


class VersionError(ProtocolError):
    """A message, but of another protocol version: host and guest run different harnesses."""


# host -> guest


@dataclass
class Start:
    """Start pytest with the user's arguments, collect exactly these cases, then wait for Run.

    ``collect``: the cases' ids, as the host's pytest gave them. ``initial``: the
    host's collection arguments (``config.args``, a kernel taken off an id), so
    the guest's pytest starts from the same paths and gives the same ids, those
    of files outside the rootdir included (relative to the argument that named
    them); ``files``: the paths of the cases' files, the only ones the guest
    collects. Without them the guest collects ``collect`` from the rootdir.
    ``plugins``: the modules of the plugins the host's pytest loaded from entry
    points, registered as they are instead of every installed distribution's
    metadata being read over 9p to find them (None: let pytest autoload). ``ahead``:
    those of them to import before pytest starts, so unrewritten
    (``harness.parts.dependency_plugins``)."""

    args: list[str]
    kernel: str
    collect: list[str]
    plugins: list[str] | None = None
    initial: list[str] | None = None
    files: list[str] | None = None
    ahead: list[str] = field(default_factory=list)


@dataclass
class Run:
    """Run one test; ``next`` lets the guest keep fixtures shared with it.

    ``ahead``: the guest may start ``next`` as soon as this test is done, before its
    own Run arrives (that Run must then name it; a Quit instead discards it)."""

    nodeid: str
    next: str | None = None
    ahead: bool = False


@dataclass
class Quit:
    """Finish the session and power the VM off (a warm VM: end this run's session)."""


@dataclass
class Serve:
    """Become a fork server for warm reruns (``--reuse-vm``), see harness.guest.forkserver.

    ``preload``: modules to import once in the server, for every run's child to inherit
    (the harness plugin's, named by the host: the guest side imports nothing of it)."""

    preload: list[str] = field(default_factory=list)


@dataclass
class Fork:
    """Fork server: start a fresh child for one run, in this directory with these variables.

    The child then takes the run's Start, Run and Quit like a one-shot agent."""

    cwd: str
    env: dict[str, str] = field(default_factory=dict)


# guest -> host


@dataclass
class Ready:
    """Collection finished: what the guest runs and on which kernel."""

    release: str
    version: str
    uptime: float
    nodeids: list[str]
    collect_errors: list[str] = field(default_factory=list)
    rootdir: str = ""  # the guest pytest's rootdir, for an error when the ids disagree
    nearest: dict[str, str] = field(default_factory=dict)  # a case not collected -> the nearest id that was


@dataclass
class Done:
    """One test finished: its pytest reports, in order, each serialised by pytest's own hook or,
    for a phase that passed with nothing to show, compact (``compact_report``)."""

    nodeid: str
    reports: list[dict]


# What a TestReport holds when nothing but pytest made it (its id as "_id" from pytest 9). A phase
# that passed and holds nothing else travels as {"passed": when, "duration": ..., "start": ...,
# "stop": ...}, a tenth the size: the host rebuilds it from its own item (harness.plugin.dispatch).
_PLAIN = {
    "nodeid",
    "_id",
    "location",
    "keywords",
    "outcome",
    "longrepr",
    "when",
    "user_properties",
    "sections",
}
_TIMES = ("duration", "start", "stop")
COMPACT = "passed"


def compact_report(report) -> dict | None:
    """The compact form of a report that passed with no output, no properties and no attributes of
    other plugins (or the harness), else None: such a report is whole in when it ran and for how long."""
    if report.outcome != "passed" or report.longrepr is not None or report.sections or report.user_properties:
        return None
    if not report.__dict__.keys() <= _PLAIN.union(_TIMES):
        return None
    return {COMPACT: report.when, **{name: getattr(report, name) for name in _TIMES}}


@dataclass
class Serving:
    """The fork server is up: what it booted, and the kernel objects that existed after boot."""

    release: str
    version: str
    uptime: float
    baseline: dict[str, int] = field(default_factory=dict)  # kind -> count


@dataclass
class Cleaned:
    """A run's child exited; what it left behind was removed, or could not be."""

    status: int  # the child's exit status
    removed: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # non-empty: the VM must not serve again
    seconds: float = 0.0


@dataclass
class Lost:
    """From the keeper of a warm VM: the VM died (panic, crash); it will not answer again."""

    reason: str
    console: str
    log: str | None = None


@dataclass
class Fatal:
    """The agent cannot go on (pytest usage error, crash in the agent)."""

    message: str


MESSAGES = {
    cls.__name__: cls for cls in (Start, Run, Quit, Serve, Fork, Ready, Done, Serving, Cleaned, Lost, Fatal)
}


def encode(msg) -> bytes:
    # the fields as they are: dataclasses.asdict deep-copies every report of a Done first, which
    # was a quarter of the guest's own time per test under TCG
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    return (json.dumps({"type": type(msg).__name__, "v": VERSION, **fields}) + "\n").encode()


def decode(line: bytes | str):
    try:
        record = json.loads(line)
        cls = MESSAGES[record.pop("type")]
        version = record.pop("v")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"not a harness message: {line[:200]!r}") from exc
    if version != VERSION:
        raise VersionError(
            f"message version {version}, expected {VERSION}: host and guest run different harness versions"
        )
    return cls(**record)
