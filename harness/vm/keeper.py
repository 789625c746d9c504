"""The keeper of one warm VM: boots it, relays each run to it, powers it off when idle or told to.

Started detached by the run that needs the VM (``harness.vm.warm``) as
``python -m harness.vm.keeper STATE_DIR``; it reads ``spec.json`` there,
listens on ``STATE_DIR/sock`` and keeps ``record.json`` current. It owns
vng's pipes, so the VM lives exactly as long as the keeper: if the keeper
is killed, however hard, the launcher's reaper takes vng and QEMU with it.

On its socket, the first line of a connection is a request:

- ``Request("run", client=PID, idle_timeout=S)``: answered (after the
  boot, if one is under way) with the record, then the connection carries
  the host-guest protocol both ways until the guest reports the run
  ``Cleaned``. A run that left kernel objects behind ends the VM. A client
  that goes away mid-run gets its session ended (``Quit``) for it.
- ``Request("status")``: the record.
- ``Request("stop")``: power off now (a run in flight is told ``Lost``).

With no run attached for ``idle_timeout`` seconds (default 15 minutes) the
keeper powers the VM off and exits; it exits too when the VM dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from harness import parts, protocol
from harness.vm import records
from harness.vm.launcher import VM
from harness.vm.records import Answer, Record, Request, Spec
from harness.vm.seam import VMBootError, VMLost

# Imported once by the guest's fork server, inherited by each run's child: the plugin every
# run loads and its parts (harness.parts names them once), and libbpf's binding.
PRELOAD = ("harness.plugin", *parts.PLUGIN_PARTS, "harness.bpf.libbpf")
KEEP_LOGS = 4  # console logs of earlier boots kept in the state directory
POLL = 1.0  # seconds between checks of an idle VM


class Stop(Exception):
    """SIGTERM: end the VM now."""


class Keeper:
    def __init__(self, directory: Path):
        self.dir = directory
        self.spec = spec = records.load(Spec, directory / "spec.json")
        self.cfg = spec.vm_config(log_dir=directory)
        self.idle_timeout = spec.idle_timeout
        self.events: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.vm: VM | None = None
        self.record = Record(
            pid=os.getpid(),
            kernel=spec.kernel,
            image=spec.image,
            accel=self.cfg.accel,
            memory=self.cfg.memory,
            cpus=self.cfg.cpus,
            idle_timeout=self.idle_timeout,
        )

    # -- main -----------------------------------------------------------------

    def main(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self._prune_logs()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "sock").unlink()
        listener.bind(str(self.dir / "sock"))
        listener.listen(8)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        self._save()
        why = "?"
        try:
            if not self._boot():
                return 1
            why = self._serve()
            return 0
        except Stop:
            why = "SIGTERM"
            return 0
        finally:
            print(f"keeper {os.getpid()}: ending the VM ({why})", flush=True)
            if self.vm is not None:
                if why in ("idle", "stop"):
                    self.vm.close()
                else:
                    self.vm.kill()
            for name in ("record.json", "sock"):
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / name).unlink()
            listener.close()

    def _on_signal(self, signum, frame):
        raise Stop()

    def _boot(self) -> bool:
        kernel = SimpleNamespace(name=self.spec.kernel, image=Path(self.spec.image))
        vm = VM(kernel, self.cfg, Path(self.spec.cwd))
        self.vm = vm
        self.record.console_log = str(vm.log_path)
        self._save()
        started = vm.launch()
        vm.send(protocol.Serve(preload=list(PRELOAD)))
        try:
            msg = vm.await_boot()
            if not isinstance(msg, protocol.Serving):
                raise VMBootError(f"expected Serving from the guest, got {msg!r}")
        except VMBootError as exc:
            vm.kill()
            self.vm = None
            self._refuse_waiting(str(exc), exc.exited)
            return False
        self.record = dataclasses.replace(
            self.record,
            state="ready",
            release=msg.release,
            boot_seconds=round(time.monotonic() - started, 2),
            guest_uptime=msg.uptime,
            baseline=msg.baseline,
            last_used=time.time(),
        )
        self._save()
        return True

    def _serve(self) -> str:
        """Serve runs until idle, stopped, or the VM must go; returns why it ended."""
        while True:
            idle_left = self.record.last_used + self.idle_timeout - time.time()
            try:
                event = self.events.get(timeout=max(0.0, min(idle_left, POLL)))
            except queue.Empty:
                if self.vm is None or not self.vm.alive:
                    return "the VM died while idle"
                if idle_left <= 0:
                    return "idle"
                continue
            kind, conn, hello = event
            if kind == "stop":
                return "stop"
            keep = self._run(conn, hello)
            self.record = dataclasses.replace(self.record, client=None, last_used=time.time())
            self._save()
            if not keep:
                return "the run ended the VM"

    # -- one run ----------------------------------------------------------------

    def _run(self, conn: socket.socket, hello: Request) -> bool:
        """Relay one run between its client and the guest; False if the VM must not serve again."""
        vm = self.vm
        assert vm is not None
        if hello.idle_timeout:
            self.idle_timeout = hello.idle_timeout
        self.record = dataclasses.replace(self.record, client=hello.client, idle_timeout=self.idle_timeout)
        self._save()
        state = {"forked": False, "cleaned": False}
        gone = threading.Event()

        def pump():
            with contextlib.suppress(OSError):
                for line in conn.makefile("rb"):
                    try:
                        msg = protocol.decode(line)
                    except protocol.ProtocolError:
                        continue
                    if isinstance(msg, protocol.Fork):
                        state["forked"] = True
                    vm.send(msg)
            gone.set()
            if state["forked"] and not state["cleaned"]:
                vm.send(protocol.Quit())  # the client died: end its session for it

        try:
            conn.sendall(self._answer(ok=True))
        except OSError:
            conn.close()
            return True
        threading.Thread(target=pump, daemon=True).start()
        abandoned_at = None
        try:
            while True:
                if self.stopping.is_set():
                    self._tell(conn, protocol.Lost("stopped by `python -m harness vm stop`", "", None))
                    return False
                try:
                    msg = vm.poll(POLL)
                except VMLost as lost:
                    self._tell(conn, protocol.Lost(lost.reason, lost.console, str(lost.log)))
                    return False
                if msg is None:
                    if gone.is_set():
                        if not state["forked"]:
                            return True
                        abandoned_at = abandoned_at or time.monotonic()
                        if time.monotonic() - abandoned_at > self.cfg.test_timeout + 30:
                            return False  # a hung test nobody waits for
                    continue
                if isinstance(msg, protocol.Cleaned):
                    state["cleaned"] = True
                    self.record.runs += 1
                    if msg.leftovers:
                        self.record.state = "unclean"
                self._tell(conn, msg)
                if isinstance(msg, protocol.Cleaned):
                    return not msg.leftovers
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    @staticmethod
    def _tell(conn: socket.socket, msg) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(protocol.encode(msg))

    # -- control connections ------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._request, args=(conn,), daemon=True).start()

    def _request(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            line = conn.makefile("rb").readline()
            conn.settimeout(None)
            hello = records.decode(Request, line, "a request to the keeper")
        except (OSError, records.RecordError) as exc:
            print(f"keeper {os.getpid()}: {exc}", flush=True)
            conn.close()
            return
        op = hello.op
        if op == "run":
            self.events.put(("run", conn, hello))
            return
        with contextlib.suppress(OSError):
            conn.sendall(self._answer(ok=op in ("status", "stop")))
        conn.close()
        if op == "stop":
            self.stopping.set()
            self.events.put(("stop", None, None))
            if self.record.state == "booting":  # the main thread waits for the boot
                os.kill(os.getpid(), signal.SIGTERM)

    def _refuse_waiting(self, error: str, exited: bool) -> None:
        """Runs that waited for a boot that failed hear why."""
        deadline = time.monotonic() + 1.0
        while True:
            try:
                kind, conn, _ = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(self._answer(ok=False, error=error, exited=exited))
                conn.close()

    # -- state ----------------------------------------------------------------------

    def _save(self) -> None:
        records.save(self.dir / "record.json", self.record)

    def _answer(self, ok: bool, error: str | None = None, exited: bool = False) -> bytes:
        answer = Answer(ok=ok, record=self.record, error=error, exited=exited)
        return (records.encode(answer) + "\n").encode()

    def _prune_logs(self) -> None:
        logs = sorted(self.dir.glob("*.console.log"), key=lambda p: p.stat().st_mtime)
        for old in logs[:-KEEP_LOGS]:
            with contextlib.suppress(OSError):
                old.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.vm.keeper STATE_DIR", file=sys.stderr)
        return 2
    try:
        keeper = Keeper(Path(argv[0]))
    except (OSError, records.RecordError) as exc:
        print(f"keeper {os.getpid()}: cannot start: {exc}", file=sys.stderr)
        return 2
    return keeper.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
