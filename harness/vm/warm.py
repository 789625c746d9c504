"""Warm VMs (``pytest --reuse-vm``): find or start the kept VM for a kernel and its settings, use it for one run.

A warm VM outlives the pytest run that booted it, so it has an owner that
outlives pytest: a keeper process (``harness.vm.keeper``) per VM, detached
in its own session. Its state lives in a directory per VM::

    <state root>/vms/<settings key>-<slot>/
        spec.json         what to boot (written by the run that starts the keeper)
        record.json       the keeper's word: pid, kernel, state, boot time, runs served, last use
        sock              the keeper's Unix socket
        lock              held (filelock) by the one run that uses the VM; the OS drops it
                          when that run dies, however it dies
        *.console.log     the VM's console, one file per boot

spec.json, record.json and what goes over the socket before the protocol are
versioned records (harness.vm.records).

The settings key hashes everything a booted guest cannot change afterwards:
the kernel image, accel, memory, vCPUs, kernel command line, the harness
version and sources, the interpreter and its module tree, and the writable
results directory. A run whose settings differ gets another VM; a run that
finds its VM busy boots another slot and says so.

``WarmVM`` is, like ``launcher.VM``, what the dispatcher needs of a VM (``seam.GuestVM``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness import protocol
from harness.vm import pagecache, records
from harness.vm.records import Answer, Record, Request, Spec
from harness.vm.seam import Conversation, VMBootError, VMConfig, VMError, VMLost

STATE_ENV = "HARNESS_VM_STATE_DIR"
DEFAULT_IDLE_TIMEOUT = 900.0  # seconds; a warm VM holds 1 GiB and, under TCG, some CPU
MAX_SLOTS = 8  # warm VMs of one key at once (xdist workers, concurrent runs)
STARTUP_SECONDS = 30.0  # a keeper that has not opened its socket by then has failed
KEEPER_MODULE = "harness.vm.keeper"
PROFILE_ENV = "HARNESS_FORK_PROFILE"  # a file in the results directory: cProfile of each run's child


def state_root() -> Path:
    """Where warm VMs keep their state: $HARNESS_VM_STATE_DIR, else the user's cache."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]) / "vms"
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_cache_dir("bpf-vm-harness")) / "vms"


# -- the settings key ----------------------------------------------------------

_digests: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _digests:
        with open(path, "rb") as f:
            _digests[memo] = hashlib.file_digest(f, "sha256").hexdigest()
    return _digests[memo]


def harness_fingerprint() -> str:
    """The harness version plus its sources' sizes and times: the guest imported them at boot."""
    from importlib import metadata  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    try:
        h.update(metadata.version("bpf-vm-harness").encode())
    except metadata.PackageNotFoundError:
        pass
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def settings_key(image: Path, cfg: VMConfig) -> str:
    parts = {
        "image": file_digest(image),
        "accel": cfg.accel,
        "memory": cfg.memory,
        "cpus": cfg.cpus,
        "append": list(cfg.append),
        "python": sys.executable,
        "pyzip": [str(p) for p in cfg.pyzip],
        "harness": harness_fingerprint(),
        "rwdir": str(cfg.results_dir),
        # the guest's fork server reads the installed distributions once (harness.guest.forkserver.freeze_distributions)
        "site": [
            pagecache.mtime(Path(p)) for p in sys.path if p.endswith(("site-packages", "dist-packages"))
        ],
        # the guest keeps what it read of these trees (harness.vm.pagecache)
        "page_cache": pagecache.stamp(image) if cfg.page_cache else [],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# -- records -------------------------------------------------------------------


def keeper_alive(pid: int) -> bool:
    """pid is a running keeper (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return KEEPER_MODULE.encode() in cmdline


@dataclass
class Kept:
    """A warm VM as `vm list` shows it."""

    dir: Path
    record: Record

    @property
    def pid(self) -> int:
        return self.record.pid


def kept_vms(root: Path | None = None, refused: list[str] | None = None) -> list[Kept]:
    """Every warm VM whose keeper runs; records of dead keepers are removed.

    A record of another harness version is left alone (its keeper may run): what
    ``records.FormatError`` says of it goes to ``refused``, if given."""
    root = root or state_root()
    found = []
    for record_path in sorted(root.glob("*/record.json")):
        try:
            record = records.load(Record, record_path)
        except records.FormatError as exc:
            if refused is not None:
                refused.append(str(exc))
            continue
        except (OSError, records.RecordError):
            record = None
        if record and keeper_alive(record.pid):
            found.append(Kept(record_path.parent, record))
        else:
            with contextlib.suppress(OSError):
                record_path.unlink()
    return found


def request(directory: Path, op: Request, timeout: float = 10.0) -> Answer:
    """One control request to a keeper: ``Request("status")`` or ``Request("stop")``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(directory / "sock"))
        sock.sendall((records.encode(op) + "\n").encode())
        line = sock.makefile("rb").readline()
    if not line:
        raise OSError("the keeper closed the connection")
    return records.decode(Answer, line, f"the answer of the keeper in {directory}")


def stop(kept: Kept, timeout: float = 60.0) -> bool:
    """Ask the keeper to power its VM off; kill it if it does not go. True if it had to be killed."""
    with contextlib.suppress(OSError, records.RecordError):
        request(kept.dir, Request("stop"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not keeper_alive(kept.pid):
            return False
        time.sleep(0.2)
    # the keeper's reaper takes vng and QEMU with it when the keeper dies
    with contextlib.suppress(OSError):
        os.kill(kept.pid, signal.SIGKILL)
    return True


# -- the client side of one run --------------------------------------------------


class WarmVM(Conversation):
    """A kept VM used by this run: to dispatch, a VM like ``launcher.VM`` (``seam.GuestVM``)."""

    def __init__(
        self,
        kernel,
        cfg: VMConfig,
        cwd: Path,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        say: Callable[[str], None] = print,
    ):
        super().__init__()
        self.kernel = kernel
        self.cwd = cwd
        self.idle_timeout = idle_timeout
        self.say = say
        # the guest's writable directory is fixed at boot: the parent of this run's results
        # directory, so that every later run's own directory (a sibling) is inside it
        self.run_results = cfg.results_dir
        rwdir = cfg.results_dir.parent if cfg.results_dir is not None else None
        self.cfg = dataclasses.replace(cfg, results_dir=rwdir)
        self.log_path: Path | None = None
        self.cleaned: protocol.Cleaned | None = None
        self.dir = Path()  # the VM's state directory, once claimed
        self._lock: FileLock | None = None
        self._sock: socket.socket | None = None
        self._messages: queue.Queue = queue.Queue()
        self._keeper_pid: int | None = None
        self._closed = False

    # -- life cycle -------------------------------------------------------------

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
        started = time.monotonic()
        key = settings_key(self.kernel.image, self.cfg)
        self.dir, busy = self._claim(key)
        record = self._record(self.dir)
        spawned = None
        if record and keeper_alive(record.pid):
            age = time.time() - record.started
            self.say(
                f"reusing warm VM {self.dir.name} for {self.kernel.name} "
                f"(up {age / 60:.1f} min, runs served: {record.runs})"
            )
        else:
            why = ""
            if busy:
                other = self._record(busy[0])
                holder = other.client if other else None
                why = f"; warm VM {busy[0].name} is in use" + (f" by pid {holder}" if holder else "")
            self.say(
                f"booting {self.kernel.name} ({self.cfg.accel.upper()}, {self.cfg.cpus} vCPU, "
                f"{self.cfg.memory}) as warm VM {self.dir.name}{why} ..."
            )
            spawned = self._spawn_keeper()
        try:
            hello = self._connect(spawned)
        except VMBootError:
            self._release()
            raise
        self._keeper_pid = hello.record.pid
        self.log_path = Path(hello.record.console_log) if hello.record.console_log else None
        if not hello.ok:
            self._release()
            raise VMBootError(hello.error or "the keeper refused", exited=hello.exited)
        env = {"HARNESS_RESULTS_DIR": str(self.run_results)} if self.run_results else {}
        if os.environ.get(PROFILE_ENV):  # a profile of the run's start-up, for bench/warm.py
            env[PROFILE_ENV] = os.environ[PROFILE_ENV]
        self.send(protocol.Fork(cwd=str(self.cwd), env=env))
        self.send(self.start_message(args, collect, plugins, initial, files, ahead))
        try:
            msg = self.receive(self.cfg.boot_timeout)
        except VMLost as lost:
            raise VMBootError(
                f"warm VM {self.dir.name} lost while starting the run: {lost}", exited=True
            ) from None
        if isinstance(msg, protocol.Fatal):
            self.close()
            raise VMBootError(f"the guest agent on {self.kernel.name} failed:\n{msg.message}")
        return self.accept_ready(msg, started, "the warm VM")

    def close(self, grace: float | None = None) -> None:
        """End this run's session in the guest and wait for its clean-up; the VM stays up."""
        if self._closed or self._sock is None:
            self._release()
            return
        self.send(protocol.Quit())
        deadline = time.monotonic() + (grace or self.cfg.test_timeout)
        try:
            while True:
                msg = self.receive(max(0.1, deadline - time.monotonic()))
                if isinstance(msg, protocol.Cleaned):
                    self.cleaned = msg
                    break
        except VMLost as lost:
            self.say(f"warm VM {self.dir.name} ended while finishing the run: {lost.reason}")
            self.kill()
            return
        if msg.removed:
            self.say(f"warm VM {self.dir.name}: removed what this run left: {', '.join(msg.removed)}")
        if msg.leftovers:
            self.say(
                f"warm VM {self.dir.name}: the run left {', '.join(msg.leftovers)}, which the harness "
                "cannot remove; the VM is powered off and the next run boots a fresh one"
            )
        self._release()

    def kill(self) -> None:
        """Take the warm VM down (it hung, died or cannot be trusted): its keeper and QEMU."""
        pid = self._keeper_pid
        if pid is not None and keeper_alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)  # the keeper kills its VM and removes its record
            deadline = time.monotonic() + 30
            while keeper_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if keeper_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._release()

    @property
    def alive(self) -> bool:
        return self._sock is not None and not self._closed

    def console_tail(self, lines: int = 60) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- plumbing ---------------------------------------------------------------

    def _claim(self, key: str) -> tuple[Path, list[Path]]:
        """The first slot of this key that no other run holds, locked for this run."""
        busy = []
        for slot in range(MAX_SLOTS):
            directory = state_root() / f"{key}-{slot}"
            directory.mkdir(parents=True, exist_ok=True)
            lock = FileLock(directory / "lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                busy.append(directory)
                continue
            self._lock = lock
            return directory, busy
        raise VMError(
            f"all {MAX_SLOTS} warm VMs for {self.kernel.name} with these settings are in use; "
            "stop some (python -m harness vm stop) or run without --reuse-vm"
        )

    @staticmethod
    def _record(directory: Path) -> Record | None:
        """The keeper's record in a state directory, if one of this harness is there."""
        try:
            return records.load(Record, directory / "record.json")
        except (OSError, records.RecordError):
            return None

    def _spawn_keeper(self) -> subprocess.Popen:
        for stale in ("sock", "record.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / stale).unlink()
        records.save(self.dir / "spec.json", Spec.of(self.kernel, self.cwd, self.idle_timeout, self.cfg))
        with open(self.dir / "keeper.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", KEEPER_MODULE, str(self.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,  # a Ctrl-C or kill of this run's group does not reach it
            )
        threading.Thread(target=proc.wait, daemon=True).start()  # no zombie while this run lives
        return proc

    def _connect(self, spawned: subprocess.Popen | None) -> Answer:
        path = str(self.dir / "sock")
        deadline = time.monotonic() + STARTUP_SECONDS
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                sock.connect(path)
                break
            except OSError:
                if (spawned is not None and spawned.poll() is not None) or time.monotonic() > deadline:
                    sock.close()
                    raise VMBootError(
                        f"the keeper of warm VM {self.dir.name} did not start; its log: "
                        f"{self.dir / 'keeper.log'}",
                        exited=True,
                    ) from None
                time.sleep(0.05)
        hello = Request("run", client=os.getpid(), idle_timeout=self.idle_timeout)
        sock.sendall((records.encode(hello) + "\n").encode())
        # the keeper answers once its VM is up: a boot's worth of waiting
        sock.settimeout(self.cfg.boot_timeout + 60)
        stream = sock.makefile("rb")
        try:
            line = stream.readline()
        except OSError:
            line = b""
        if not line:
            sock.close()
            raise VMBootError(
                f"the keeper of warm VM {self.dir.name} went away while booting; its log: "
                f"{self.dir / 'keeper.log'}",
                exited=True,
            )
        try:
            answer = records.decode(Answer, line, f"the answer of the keeper of warm VM {self.dir.name}")
        except records.RecordError as exc:
            sock.close()
            raise VMBootError(str(exc)) from None
        sock.settimeout(None)
        self._sock = sock
        threading.Thread(target=self._read_messages, args=(stream,), daemon=True).start()
        return answer

    def send(self, msg) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendall(protocol.encode(msg))
        except OSError:
            pass  # the reader notices the keeper went away and reports it

    def _read_messages(self, stream) -> None:
        try:
            for line in stream:
                with contextlib.suppress(protocol.ProtocolError):
                    self._messages.put(protocol.decode(line))
        except OSError:
            pass
        self._messages.put(None)

    def poll(self, timeout: float):
        """The guest's next message, or None after ``timeout`` s; VMLost if the VM or its keeper is gone."""
        try:
            msg = self._messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(msg, protocol.Lost):
            raise VMLost(msg.reason, msg.console, Path(msg.log) if msg.log else self.log_path)
        if msg is None:
            raise VMLost("the warm VM's keeper went away", self.console_tail(), self.log_path)
        return msg

    def _release(self) -> None:
        self._closed = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
