"""BPF programs written in C, compiled with clang on the host and loaded with libbpf's object API.

The sources are in cases/c/. Under --kernel the host compiles them before the
VMs boot and each guest loads the same object, so what is tested is CO-RE:
one object, relocated by libbpf against each kernel's BTF.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.bpf import gates
from harness.bpf.compile import CompileError
from harness.bpf.object import ObjectError, unpack_cstr
from harness.libbpf import ProgType

HERE = Path(__file__).parent
REPO = HERE.resolve().parent
# struct data_t in c/hello.h: pid, uid, command[16], path[32], message[12]
EVENT = struct.Struct("<II16s32s12s")
MESSAGE = b"Hey root!"


def own_comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


def syscall_function(name: str) -> str:
    """The kernel function behind a syscall: __x64_sys_NAME since 4.17 on x86-64."""
    symbols = {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines()}
    for candidate in (f"__x64_sys_{name}", f"__se_sys_{name}", f"sys_{name}"):
        if candidate in symbols:
            return candidate
    raise AssertionError(f"no kernel function for the {name} syscall in /proc/kallsyms")


def python_child(*args: str, strace_log: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-B", *args]
    if strace_log is not None:
        # --seccomp-bpf: only bpf() stops the child; stopping on each of Python's start-up
        # syscalls made this child take 73 s in a TCG guest instead of a few
        strace = shutil.which("strace") or "strace"
        cmd = [strace, "-f", "--seccomp-bpf", "-e", "trace=bpf", "-o", str(strace_log), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def the_call(lines: list[str], command: str, name_field: str, name: str) -> str:
    found = [line for line in lines if f"bpf({command}," in line and f'{name_field}="{name}"' in line]
    assert found, f"no bpf({command}) with {name_field}={name!r} in the strace output:\n" + "\n".join(lines)
    return found[-1]


def test_seed_program_makes_the_seeds_bpf_calls(bpf_object_path, tmp_path, record_property):
    """strace -e bpf in the guest shows the seed's map create and program load, each returning an fd."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed: apt-get install strace")
    log = tmp_path / "strace.log"
    done = python_child(str(HERE / "_load_object.py"), str(bpf_object_path("c/hello.bpf.c")), strace_log=log)
    assert done.returncode == 0, done.stderr
    # strace -f starts each line with the pid
    lines = [re.sub(r"^\d+\s+", "", line) for line in log.read_text().splitlines()]

    map_create = the_call(lines, "BPF_MAP_CREATE", "map_name", "config")
    prog_load = the_call(lines, "BPF_PROG_LOAD", "prog_name", "hello")
    for key, line in (("strace_map_create", map_create), ("strace_prog_load", prog_load)):
        record_property(key, line)
        print(line)
    for field in ("map_type=BPF_MAP_TYPE_HASH", "key_size=4", "value_size=12", "max_entries=10240"):
        assert f"{field}," in map_create
    assert re.search(r"btf_fd=[1-9]\d*", map_create), map_create
    assert re.search(r"\) = [1-9]\d*$", map_create), map_create
    for field in ("prog_type=BPF_PROG_TYPE_KPROBE", 'license="GPL"'):
        assert f"{field}," in prog_load
    assert re.search(r"prog_btf_fd=[1-9]\d*", prog_load), prog_load
    assert re.search(r"\) = [1-9]\d*$", prog_load), prog_load


@pytest.mark.requires(map_type="RINGBUF")
def test_seed_program_reports_an_exec_with_the_users_message(bpf_object, kprobes):
    obj = bpf_object("c/hello.bpf.c")
    hello = obj.program("hello")
    assert hello.type == ProgType.KPROBE
    obj.map("config").update(struct.pack("<I", os.getuid()), MESSAGE.ljust(12, b"\0"))
    hello.attach_kprobe(syscall_function("execve"))
    command = shutil.which("true")
    with obj.map("output").ring_buffer() as ring:
        child = subprocess.Popen([command])
        assert child.wait(timeout=60) == 0
        events: list[tuple] = []
        deadline = time.monotonic() + 10
        while not [e for e in events if e[0] == child.pid] and time.monotonic() < deadline:
            events += [EVENT.unpack(sample) for sample in ring.poll(100)]
    mine = [e for e in events if e[0] == child.pid]
    assert mine, f"no event with pid {child.pid} among {len(events)} events"
    pid, uid, comm, path, message = mine[0]
    assert unpack_cstr(path) == command
    assert uid == os.getuid()
    assert unpack_cstr(comm) == own_comm()  # at execve entry the child still has our name
    assert unpack_cstr(message) == MESSAGE.decode()


def test_core_reads_task_fields_at_this_kernels_offsets(bpf_object, tracing):
    """One object, compiled once: pid, tgid, real_parent->tgid and comm of task_struct sit at
    other offsets on every kernel series (pid: 2416 on 6.1, 2432 on 6.12, 1264 in the 6.18
    header it was compiled against); libbpf relocates the reads against this kernel's BTF,
    so right values here mean the relocation happened."""
    obj = bpf_object("c/core_task.bpf.c")
    zero = struct.pack("<I", 0)
    obj.map("target").update(zero, struct.pack("<I", os.getpid()))
    obj.program("core_task").attach_tracepoint("syscalls", "sys_enter_getppid")
    ppid = os.getppid()
    pid, tgid, parent, hits, comm = struct.unpack("<IIII16s", obj.map("result").lookup(zero))
    assert hits >= 1
    assert (pid, tgid, parent) == (threading.get_native_id(), os.getpid(), ppid)
    assert unpack_cstr(comm) == own_comm()


# task_struct::saved_state is in every build since 6.6 (before, only PREEMPT_RT had it)
SAVED_STATE_SINCE = "6.6"


def test_core_field_this_kernel_lacks_fails_with_libbpfs_relocation_message(bpf_object, tracing):
    obj = bpf_object("c/core_new_field.bpf.c", load=False)
    if gates.kernel_version(os.uname().release) >= gates.kernel_version(SAVED_STATE_SINCE):
        obj.load()
        obj.program("new_field").attach()  # where its SEC() says: tracepoint syscalls:sys_enter_getppid
        os.getppid()
        zero = struct.pack("<I", 0)
        (state,) = struct.unpack("<I", obj.map("state").lookup(zero))
        assert state == 0  # the running task's saved state: TASK_RUNNING
        return
    with pytest.raises(ObjectError) as caught:
        obj.load()
    assert caught.value.errno_name == "EINVAL"
    assert "failed to resolve CO-RE relocation" in caught.value.log
    assert "struct task_struct.saved_state" in caught.value.log


def test_unrelocatable_program_fails_with_libbpfs_message(bpf_object):
    obj = bpf_object("c/core_unrelocatable.bpf.c", load=False)
    with pytest.raises(ObjectError) as caught:
        obj.load()
    assert caught.value.op == "bpf_object__load"
    assert caught.value.errno_name == "EINVAL"
    assert "failed to resolve CO-RE relocation" in caught.value.log
    assert "task_struct___fake.no_such_field" in caught.value.log
    assert "failed to resolve CO-RE relocation" in str(caught.value)


def test_verifier_rejects_unchecked_map_value_with_errno_and_log(bpf_object):
    obj = bpf_object("c/rejected.bpf.c", load=False)
    with pytest.raises(ObjectError) as caught:
        obj.load()
    assert caught.value.errno_name == "EACCES"
    assert "R0 invalid mem access 'map_value_or_null'" in caught.value.log
    assert "BEGIN PROG LOAD LOG" in caught.value.log


def test_broken_c_gives_clangs_diagnostic(bpf_object_path):
    with pytest.raises(CompileError) as caught:
        bpf_object_path("c/broken.bpf.c")
    assert "broken.bpf.c:11:9: error: use of undeclared identifier 'undeclared_variable'" in str(caught.value)


def test_kretprobe_by_name_and_tracepoint_by_section_both_count(bpf_object, kprobes):
    obj = bpf_object("c/count.bpf.c")
    obj.program("count_returns").attach_kprobe(syscall_function("getppid"), retprobe=True)
    obj.program("count_entries").attach()  # SEC("tracepoint/syscalls/sys_enter_getppid")
    for _ in range(5):
        os.getppid()
    returns, entries = (
        struct.unpack("<Q", obj.map("counts").lookup(struct.pack("<I", i)))[0] for i in (0, 1)
    )
    assert returns >= 5  # getppid from other processes counts too
    assert entries >= 5
