"""The warm VM's records (``--reuse-vm``): what to boot, the keeper's word, requests and answers.

Each is a dataclass; on disk (``spec.json``, ``record.json``) and on the
keeper's socket (one JSON object per line) it carries its type and the
format version, ``{"type": "Record", "v": 2, "pid": 1234, ...}``, written by
``encode`` and read by ``decode`` alone. A record of another format was
written by another version of the harness (a keeper left running across an
upgrade, say) and is refused with ``FormatError``, which says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.vm.seam import VMConfig

FORMAT = 2  # 1: plain dicts, read by key; 2: these dataclasses

T = TypeVar("T")


class RecordError(Exception):
    """Not a warm VM record of the type asked for (damaged, half-written, something else)."""


class FormatError(RecordError):
    """A record of another format: another version of the harness wrote it."""


@dataclass
class Spec:
    """spec.json: what the keeper boots, written by the run that starts it."""

    kernel: str  # the name test ids carry
    image: str
    cwd: str
    idle_timeout: float
    accel: str
    memory: str
    cpus: int
    boot_timeout: float
    test_timeout: float
    append: list[str]
    results_dir: str | None
    pyzip: list[str]

    @classmethod
    def of(cls, kernel, cwd: Path, idle_timeout: float, cfg: VMConfig) -> Spec:
        return cls(
            kernel=kernel.name,
            image=str(kernel.image),
            cwd=str(cwd),
            idle_timeout=idle_timeout,
            accel=cfg.accel,
            memory=cfg.memory,
            cpus=cfg.cpus,
            boot_timeout=cfg.boot_timeout,
            test_timeout=cfg.test_timeout,
            append=list(cfg.append),
            results_dir=str(cfg.results_dir) if cfg.results_dir else None,
            pyzip=[str(p) for p in cfg.pyzip],
        )

    def vm_config(self, log_dir: Path) -> VMConfig:
        return VMConfig(
            accel=self.accel,
            memory=self.memory,
            cpus=self.cpus,
            boot_timeout=self.boot_timeout,
            test_timeout=self.test_timeout,
            append=tuple(self.append),
            results_dir=Path(self.results_dir) if self.results_dir else None,
            pyzip=tuple(Path(p) for p in self.pyzip),
            log_dir=log_dir,
        )


@dataclass
class Record:
    """record.json: the keeper's word on its VM, kept current by the keeper."""

    pid: int  # the keeper's
    kernel: str
    image: str
    accel: str
    memory: str
    cpus: int
    idle_timeout: float
    state: str = "booting"  # booting | ready | unclean
    started: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    runs: int = 0  # runs served
    client: int | None = None  # the pid of the run using the VM
    console_log: str | None = None
    release: str | None = None  # once booted: uname -r in the guest
    boot_seconds: float | None = None
    guest_uptime: float | None = None
    baseline: dict[str, int] = field(default_factory=dict)  # kind -> count after boot


@dataclass
class Request:
    """The first line of a connection to the keeper: run (then the protocol), status, or stop."""

    op: str  # run | status | stop
    client: int | None = None  # run: the pid of the run
    idle_timeout: float | None = None  # run: a new idle timeout for the VM


@dataclass
class Answer:
    """The keeper's answer to a request: its record, or why it cannot serve (a boot that failed)."""

    ok: bool
    record: Record
    error: str | None = None
    exited: bool = False  # the VM died while booting (rather than hung)

    def __post_init__(self):
        if isinstance(self.record, dict):  # as decode() finds it
            self.record = Record(**self.record)


def encode(rec) -> str:
    """One line of JSON, without the newline."""
    return json.dumps({"type": type(rec).__name__, "v": FORMAT, **dataclasses.asdict(rec)})


def decode(cls: type[T], text: str | bytes, source: str = "a warm VM record") -> T:
    """The record of type ``cls`` in ``text``; RecordError (FormatError: another version) if it is not one."""
    try:
        data: dict[str, Any] = json.loads(text)
        version = data.pop("v", None)
    except (ValueError, AttributeError, TypeError) as exc:
        raise RecordError(f"{source} is not a warm VM record: {text[:200]!r}") from exc
    if version != FORMAT:
        raise FormatError(
            f"{source} has record format {version}, this harness reads format {FORMAT}: another "
            "version of bpf-vm-harness wrote it; stop that warm VM with the harness that started it "
            "(python -m harness vm stop), or end its keeper, and the next run boots a fresh VM"
        )
    kind = data.pop("type", None)
    if kind != cls.__name__:
        raise RecordError(f"{source} is a {kind} record, expected {cls.__name__}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise RecordError(f"{source} is not a whole {cls.__name__} record: {exc}") from None


def save(path: Path, rec) -> None:
    """Write a record file whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(encode(rec) + "\n")
    os.replace(tmp, path)


def load(cls: type[T], path: Path) -> T:
    """A record file; OSError if it cannot be read, RecordError if it is not such a record."""
    return decode(cls, path.read_text(), str(path))
