"""The results file's records (run, kernel, case) as versioned dataclasses, and the one place they are read and written.

    run = RunRecord(schema=SCHEMA, complete=True, meta=..., kernels=[...], cases=[...])
    text = dump(run)                # JSON, keys in a stable order
    run = load(Path("results.json"))  # ResultsError on a wrong schema or a broken file

docs/results-schema.md describes every field. A reader accepts exactly the
schema versions it knows; a newer file is an error that says to upgrade,
never a silent misreading.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = 1

# One letter per outcome for terminal and Markdown matrices; the order is
# also the order of "badness" when two records of one cell must be combined.
OUTCOMES = ("passed", "xfailed", "skipped", "xpassed", "failed", "error", "vm-lost")
LETTERS = {
    "passed": ".",
    "xfailed": "x",
    "skipped": "s",
    "xpassed": "X",
    "failed": "F",
    "error": "E",
    "vm-lost": "L",
}
# Outcomes a reader must look at: each carries a reproduce line.
BAD = frozenset({"failed", "error", "vm-lost", "xpassed"})


class ResultsError(Exception):
    """A results file could not be read or does not follow the schema."""


@dataclass
class KernelRecord:
    """One kernel of a run: what it is, where it came from, how it booted.

    name is what test ids carry, the exact catalog name ("6.12.117-1",
    never an alias such as "6.12" that may mean another build later); spec
    is what to pass to --kernel to get it again (the name, or a path for a
    local kernel).
    Boot fields are None when the kernel never booted (host mode, or every
    test of it was deselected) or failed to boot.
    """

    name: str
    spec: str
    release: str | None = None
    version: str | None = None  # uname -v inside the guest
    source: str | None = None  # debian, ubuntu-mainline, local, build, host
    sha256: str | None = None
    package: str | None = None
    origin: str | None = None
    accel: str | None = None  # kvm or tcg; None on the host
    boot_seconds: float | None = None
    boots: int = 0  # more than one when a VM was lost and booted again
    console_log: str | None = None


@dataclass
class CaseRecord:
    """One test on one kernel.

    case is the node id without the kernel ("cases/test_maps.py::test_x[HASH]"),
    nodeid the full one. reproduce is set for every outcome in BAD.
    """

    case: str
    kernel: str
    nodeid: str
    outcome: str
    duration: float
    message: str | None = None  # short: the exception line, the skip reason
    skip_reason: str | None = None
    errno: str | None = None  # "EACCES" when the test failed with a BPFError
    verifier_log: str | None = None
    kernel_splat: str | None = None
    vm_lost: str | None = None
    reproduce: str | None = None


@dataclass
class RunMeta:
    started: str  # ISO 8601, UTC
    finished: str | None
    host: str
    host_kernel: str
    harness_version: str
    git_commit: str | None
    args: list[str]
    mode: str  # "vm" or "host"
    exit_status: int | None = None
    label: str | None = None  # free text, e.g. the CI job


@dataclass
class RunRecord:
    schema: int
    complete: bool
    meta: RunMeta
    kernels: list[KernelRecord] = field(default_factory=list)
    cases: list[CaseRecord] = field(default_factory=list)


def reproduce_line(nodeid: str, kernel_spec: str | None) -> str:
    """The command that reruns one cell locally, quoted for a POSIX shell."""
    parts = ["pytest"]
    if kernel_spec:
        parts += ["--kernel", kernel_spec]
    parts.append(nodeid)
    return shlex.join(parts)


def to_dict(run: RunRecord) -> dict:
    return dataclasses.asdict(run)


def from_dict(data: dict, where: str = "results") -> RunRecord:
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: expected a JSON object at the top, found {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        hint = (
            "it was written by a newer harness; upgrade this one"
            if isinstance(schema, int) and schema > SCHEMA
            else "it is not a harness results file"
        )
        raise ResultsError(f"{where}: results schema {schema!r}, this harness reads schema {SCHEMA}; {hint}")
    try:
        return RunRecord(
            schema=schema,
            complete=bool(data["complete"]),
            meta=_build(RunMeta, data["meta"], where, "meta"),
            kernels=[_build(KernelRecord, k, where, "kernels[]") for k in data["kernels"]],
            cases=[_build(CaseRecord, c, where, "cases[]") for c in data["cases"]],
        )
    except KeyError as e:
        raise ResultsError(
            f"{where}: missing field {e.args[0]!r}; the file is damaged or not a harness results file"
        ) from None


def _build(cls, data: dict, where: str, what: str):
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: {what} should be an object, found {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ResultsError(
            f"{where}: {what} has unknown field(s) {', '.join(unknown)} for schema "
            f"{SCHEMA}; the file was written by another harness version"
        )
    try:
        return cls(**data)
    except TypeError as e:
        raise ResultsError(f"{where}: {what}: {e}") from None


def dumps(run: RunRecord) -> str:
    return json.dumps(to_dict(run), indent=1, sort_keys=False) + "\n"


def loads(text: str, where: str = "results") -> RunRecord:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(
            f"{where} is not valid JSON ({e}); a run that was killed may have "
            "left it half written - run it again"
        ) from None
    return from_dict(data, where)


def load(path: Path) -> RunRecord:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ResultsError(f"cannot read results file {path}: {e.strerror}") from None
    return loads(text, str(path))


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump(run: RunRecord, path: Path) -> None:
    write_atomic(path, dumps(run))
