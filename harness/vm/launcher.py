"""One throwaway VM: ``vng`` as a subprocess, the protocol over its stdio, watchdogs, reaping.

The guest agent (``harness.guest``) speaks the protocol on the VM's standard
input and output, which virtme-ng carries over virtio-serial ports; the kernel
console comes back on standard error (``vng -v``) and is kept in a log file.
Every VM runs in its own process group, so one ``killpg`` takes vng, its
shell and QEMU down together; and the agent powers the guest off when its
standard input closes, so a host that dies hard still ends its VMs. The vng
command line itself is built by ``harness.vm.vng``.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from harness import protocol, splat
from harness.vm import pagecache, pvh, vng
from harness.vm.seam import Conversation, VMBootError, VMConfig, VMLost

CONSOLE_TAIL = 300  # lines of console kept in memory for reports

# Runs beside each VM: when its stdin closes (the owning pytest process ended,
# however it ended), it kills the VM's process group. The owner kills the
# reaper first when it shuts the VM down itself.
REAPER = """
import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except OSError:
    pass
"""
_serial = itertools.count(1)
# Console lines that end a boot for good; QEMU runs on after them (panic=-1 is not yet in force
# that early), so waiting for the boot timeout would only waste it. A kernel command line over
# the kernel's limit ends this way, for one.
BOOT_PANIC = re.compile(r"Kernel panic - not syncing|PANIC: early exception")


# Mounted afresh in every guest (tmpfs, devtmpfs, ...): the host's files under them are not there.
GUEST_OWN = (Path("/run"), Path("/dev"), Path("/proc"), Path("/sys"))


def guest_visible_tmp() -> str:
    """The host's temporary directory if the guest sees it at the same path, else /tmp (which
    vng overlays on the host's). The guest reads its command from there (``VM.guest_script``):
    a TMPDIR under /run/user or /dev/shm is the guest's own empty tmpfs in the guest."""
    tmp = Path(tempfile.gettempdir()).resolve()
    if any(tmp == own or tmp.is_relative_to(own) for own in GUEST_OWN):
        return "/tmp"
    return str(tmp)


class _PanickedBooting:
    """Put on the message queue by the console reader: the kernel panicked before the guest was up."""


class VM(Conversation):
    """A booted kernel that runs tests on request. Use ``start``, ``run``, ``close``."""

    def __init__(self, kernel, cfg: VMConfig, cwd: Path):
        super().__init__()
        self.kernel = kernel
        self.cfg = cfg
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._messages: queue.Queue = queue.Queue()
        self._tail: collections.deque[str] = collections.deque(maxlen=CONSOLE_TAIL)
        self._up = False  # the guest said Ready
        self._threads: list[threading.Thread] = []
        self._home = tempfile.TemporaryDirectory(prefix="bpf-harness-vng-", dir=guest_visible_tmp())
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path: Path = cfg.log_dir / f"{kernel.name}-{os.getpid()}-{next(_serial)}.console.log"

    # -- life cycle ---------------------------------------------------------

    @property
    def guest_script(self) -> Path:
        """Where ``command()`` writes the guest's shell command, in this VM's private directory
        on the host, which the guest sees at the same path."""
        return Path(self._home.name) / "guest.sh"

    def command(self) -> list[str]:
        """The vng command line that boots this VM and starts the guest agent in it.

        The guest's command goes in a file: vng hands it to the kernel base64-encoded on its
        command line, whose 2048 bytes long paths (a virtualenv's, pytest's temporary
        directories) overran, and the kernel panicked before it printed anything else."""
        cfg = self.cfg
        cached = pagecache.dirs(self.kernel.image, cfg.pyzip) if cfg.page_cache else ()
        self.guest_script.write_text(vng.guest_command(cfg.results_dir, cfg.pyzip, cached) + "\n")
        return vng.command(
            self.kernel.image,
            self.cwd,
            # exec: the agent keeps the script's process, as when the command was inline
            "exec " + shlex.join(["sh", str(self.guest_script)]),
            memory=cfg.memory,
            cpus=cfg.cpus,
            kvm=cfg.accel == "kvm",
            rwdirs=[cfg.results_dir] if cfg.results_dir is not None else [],
            append=cfg.append,
            pvh=pvh.vmlinux(self.kernel.image) if cfg.pvh_boot else None,
            cached=cached,
        )

    def start(
        self,
        args: list[str],
        collect: list[str],
        plugins: list[str] | None = None,
        *,
        initial: list[str] | None = None,
        files: list[str] | None = None,
        ahead: Sequence[str] = (),
    ) -> protocol.Ready:
        """Boot, hand the guest its pytest arguments, plugins and cases, and wait until it has collected.

        ``initial``, ``files`` and ``ahead``: the host's collection arguments, the cases' files
        and the plugins to import before pytest starts (protocol.Start)."""
        started = self.launch()
        self.send(self.start_message(args, collect, plugins, initial, files, ahead))
        return self.accept_ready(self.await_boot(), started)

    def launch(self) -> float:
        """Start vng and the reaper; returns the monotonic time it started."""
        try:
            cmd = self.command()
        except vng.VngError as exc:
            raise VMBootError(f"cannot boot {self.kernel.name}: {exc}") from None
        env = vng.environment(self._home.name, cmd[0])
        env["HARNESS_VM_LOG"] = str(self.log_path)  # lets tests find our processes
        self._log = log = open(self.log_path, "w", buffering=1, errors="replace")
        log.write(f"# {shlex.join(cmd)}\n# {self.guest_script}: {self.guest_script.read_text()}")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", REAPER, str(self.proc.pid)], stdin=subprocess.PIPE, start_new_session=True
        )
        self._spawn(self._read_messages, self.proc.stdout, log)
        self._spawn(self._read_console, self.proc.stderr, log)
        return started

    def await_boot(self):
        """The guest's first answer; VMBootError (and the VM killed) if it fails or never comes."""
        try:
            msg = self.receive(self.cfg.boot_timeout)
        except VMLost as lost:
            self.kill()
            hint = ""
            if self.cfg.accel == "kvm" and lost.reason.startswith("no answer"):
                hint = "\nIf KVM does not really work on this host, rerun with --accel tcg."
            raise VMBootError(
                f"kernel {self.kernel.name} did not come up: {lost.reason}{hint}\n"
                f"full console: {self.log_path}\n--- console (last lines) ---\n{lost.console}",
                exited=not lost.reason.startswith(("no answer", "protocol error")),
            ) from None
        if isinstance(msg, protocol.Fatal):
            self.kill()
            raise VMBootError(f"the guest agent on {self.kernel.name} failed:\n{msg.message}")
        return msg

    def close(self, grace: float = 20.0) -> None:
        """Ask the guest to power off; kill the process group if it does not."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.send(protocol.Quit())
                assert self.proc.stdin is not None  # started with stdin=PIPE
                self.proc.stdin.close()
                self.proc.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """Take down vng, its shell and QEMU; idempotent."""
        proc = self.proc
        if proc is None:
            return
        self._reaper.kill()
        self._reaper.wait()
        assert self._reaper.stdin is not None  # started with stdin=PIPE
        self._reaper.stdin.close()
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # vng is gone; QEMU, in the same group, may still be exiting
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
        for t in self._threads:
            t.join(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()
        self._home.cleanup()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_tail(self, lines: int = 60) -> str:
        return "\n".join(list(self._tail)[-lines:])

    # -- plumbing -----------------------------------------------------------

    def send(self, msg) -> None:
        assert self.proc is not None and self.proc.stdin is not None, "send() before start()"
        try:
            self.proc.stdin.write(protocol.encode(msg))
            self.proc.stdin.flush()
        except OSError:
            pass  # the reader notices the VM went away and reports it

    def poll(self, timeout: float):
        """The guest's next message, or None after ``timeout`` s; VMLost if the VM died or broke
        the protocol (with what its console says: the panic, if there was one)."""
        try:
            msg = self._messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if msg is None:
            assert self.proc is not None  # messages come only from a started VM
            for t in self._threads:
                t.join(5)  # the whole console, up to the panic, is in the tail
            self.proc.wait()
            tail = list(self._tail)
            reason = f"{splat.classify(tail)} (vng exit status {self.proc.returncode})"
            raise VMLost(reason, splat.find(tail) or self.console_tail(), self.log_path)
        if isinstance(msg, protocol.ProtocolError):
            raise VMLost(f"protocol error: {msg}", self.console_tail(), self.log_path)
        if isinstance(msg, _PanickedBooting):
            time.sleep(1.0)  # the rest of the report, still coming in
            raise VMLost(
                "kernel panic while booting",
                splat.find(list(self._tail)) or self.console_tail(),
                self.log_path,
            )
        return msg

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _read_messages(self, stream, log) -> None:
        for line in stream:
            try:
                msg = protocol.decode(line)
            except protocol.ProtocolError as exc:
                log.write(f"[stdout] {line.decode(errors='replace')}")
                # vng itself may print to stdout before the guest runs; once the
                # agent is up, the channel is its alone, and a stranger there
                # (or a message of another version, at any time) is an error
                if self._up or isinstance(exc, protocol.VersionError):
                    self._messages.put(exc)
                continue
            self._up = self._up or isinstance(msg, protocol.Ready)
            self._messages.put(msg)
        self._messages.put(None)

    def _read_console(self, stream, log) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            log.write(line)
            self._tail.append(line.rstrip("\n"))
            if not self._up and BOOT_PANIC.search(line):
                self._messages.put(_PanickedBooting())
