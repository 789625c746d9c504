"""The seam between the plugin and a VM: what dispatch needs of one, and what both kinds share.

``GuestVM`` is what ``harness.plugin.dispatch`` holds: a throwaway VM
(``harness.vm.launcher.VM``) or a kept one (``harness.vm.warm.WarmVM``).
Both are a ``Conversation`` with a guest agent: they say how a message is
sent and received and how the VM is killed; the conversation itself (the
Start, the wait for Ready, running one test, the boot record) is written
once, here. The settings, records and errors that cross the seam live here
too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import protocol
from harness.vm import vng


class VMError(Exception):
    """Something about a VM went wrong (as opposed to a test failing in it)."""


class VMBootError(VMError):
    """The VM never reached the point where it could run tests."""

    def __init__(self, message: str, exited: bool = False):
        super().__init__(message)
        self.exited = exited  # it died rather than hung: worth one more try


class VMLost(VMError):
    """The VM died or stopped answering while it was running a test."""

    def __init__(self, reason: str, console: str, log: Path | None):
        self.reason = reason
        self.console = console
        self.log = log
        where = f"\nfull console: {log}" if log else ""
        super().__init__(f"VM lost: {reason}{where}\n--- console (last lines) ---\n{console}")


@dataclass(frozen=True)
class VMConfig:
    accel: str = "tcg"
    memory: str = "1G"
    cpus: int = 2
    boot_timeout: float = 300.0
    test_timeout: float = 300.0
    log_dir: Path = Path("results") / "vm-logs"
    append: tuple[str, ...] = vng.APPEND
    results_dir: Path | None = None  # writable in the guest, as $HARNESS_RESULTS_DIR
    pyzip: tuple[Path, ...] = ()  # see harness.vm.pyzip
    run_ahead: bool = False  # Run.ahead: the guest may start the next test early (dispatch.run_ahead)
    pvh_boot: bool = True  # boot the uncompressed vmlinux through QEMU's PVH entry where the kernel has one
    page_cache: bool = (
        True  # read /usr, the interpreter and the kernel through 9p's page cache (harness.vm.pagecache)
    )


@dataclass(frozen=True)
class BootRecord:
    """A VM that came up: what the results file and the summary say about it."""

    kernel: str  # the name test ids carry
    release: str  # uname -r in the guest
    version: str  # uname -v in the guest
    accel: str
    boot_seconds: float
    console_log: str
    v: int = 1


class GuestVM(Protocol):
    """What dispatch needs of a VM: boot (or claim) it, run tests in it, end it."""

    @property
    def kernel(self) -> Any: ...  # .name, .image (harness.kernels.Kernel)

    @property
    def cfg(self) -> VMConfig: ...

    @property
    def ready(self) -> protocol.Ready | None: ...  # the guest's answer to start()

    @property
    def boot_seconds(self) -> float | None: ...

    @property
    def log_path(self) -> Path | None: ...  # the console log

    def start(
        self,
        args: list[str],
        collect: list[str],
        plugins: list[str] | None = None,
        *,
        initial: list[str] | None = None,
        files: list[str] | None = None,
        ahead: Sequence[str] = (),
    ) -> protocol.Ready: ...

    def run(self, nodeid: str, next_nodeid: str | None = None) -> protocol.Done: ...

    def close(self) -> None: ...

    def kill(self) -> None: ...

    @property
    def alive(self) -> bool: ...

    def console_tail(self, lines: int = 60) -> str: ...

    def boot_record(self) -> BootRecord: ...


class Conversation:
    """One conversation with a guest agent; a kind of VM supplies ``send``, ``poll``, ``kill``
    and ``console_tail``."""

    kernel: Any
    cfg: VMConfig
    log_path: Path | None

    def __init__(self) -> None:
        self.ready: protocol.Ready | None = None
        self.boot_seconds: float | None = None

    # -- what each kind supplies --------------------------------------------------

    def send(self, msg) -> None:
        raise NotImplementedError

    def poll(self, timeout: float):
        """The guest's next message, or None after ``timeout`` s; VMLost if the VM is gone."""
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def console_tail(self, lines: int = 60) -> str:
        raise NotImplementedError

    # -- the conversation -----------------------------------------------------------

    def receive(self, timeout: float):
        """The guest's next message; VMLost if none comes within ``timeout`` s."""
        msg = self.poll(timeout)
        if msg is None:
            raise VMLost(
                f"no answer within {timeout:.0f} s (the guest hangs; the timeout is "
                "--vm-test-timeout / --vm-boot-timeout)",
                self.console_tail(),
                self.log_path,
            )
        return msg

    def start_message(
        self,
        args: list[str],
        collect: list[str],
        plugins: list[str] | None,
        initial: list[str] | None,
        files: list[str] | None,
        ahead: Sequence[str] = (),
    ) -> protocol.Start:
        return protocol.Start(
            args=args,
            kernel=self.kernel.name,
            collect=collect,
            plugins=plugins,
            initial=initial,
            files=files,
            ahead=list(ahead),
        )

    def accept_ready(self, msg, started: float, what: str = "the guest") -> protocol.Ready:
        """The guest's answer to Start: Ready, or VMBootError with the VM killed."""
        if not isinstance(msg, protocol.Ready):
            self.kill()
            raise VMBootError(f"expected Ready from {what}, got {msg!r}")
        self.boot_seconds = time.monotonic() - started
        self.ready = msg
        return msg

    def run(self, nodeid: str, next_nodeid: str | None = None) -> protocol.Done:
        """Run one test: its Done, or VMLost with the VM killed."""
        self.send(protocol.Run(nodeid=nodeid, next=next_nodeid, ahead=self.cfg.run_ahead))
        try:
            msg = self.receive(self.cfg.test_timeout)
        except VMLost:
            self.kill()
            raise
        if isinstance(msg, protocol.Fatal):
            self.kill()
            raise VMLost(f"guest agent failed: {msg.message}", self.console_tail(), self.log_path)
        if not isinstance(msg, protocol.Done) or msg.nodeid != nodeid:
            self.kill()
            raise VMLost(f"protocol out of step: got {msg!r}", self.console_tail(), self.log_path)
        return msg

    def boot_record(self) -> BootRecord:
        assert self.ready is not None and self.boot_seconds is not None, "boot_record() before start()"
        return BootRecord(
            kernel=self.kernel.name,
            release=self.ready.release,
            version=self.ready.version,
            accel=self.cfg.accel,
            boot_seconds=round(self.boot_seconds, 2),
            console_log=str(self.log_path),
        )
