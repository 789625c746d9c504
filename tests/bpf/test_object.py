"""harness.bpf.object: libbpf's object API on the host kernel (root), with objects compiled by clang."""

from __future__ import annotations

import ctypes
import os
import pickle
import struct
from pathlib import Path

import pytest

from harness import libbpf as L
from harness.bpf import object as O
from harness.bpf.compile import CompileError, ObjectCache
from harness.bpf.object import BPFObject, ObjectError
from harness.libbpf import MapType, ProgType

HERE = Path(__file__).parent
CASES_C = HERE.parent.parent / "cases" / "c"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = ObjectCache(tmp_path_factory.mktemp("objects"))

    def get(source: Path) -> Path:
        try:
            return cache.compile(source)
        except CompileError as exc:
            if not exc.diagnostics:
                pytest.skip(str(exc))  # no clang, headers or kernel BTF on this machine
            raise

    return get


@pytest.fixture
def hello(compiled, bpf_privileges, bpf_leak_guard):
    with BPFObject.open_file(compiled(CASES_C / "hello.bpf.c")) as obj:
        yield obj


def test_open_file_lists_programs_and_maps_before_load(hello):
    assert [p.name for p in hello.programs] == ["hello"]
    assert [p.section for p in hello.programs] == ["kprobe"]
    assert {"config", "output"} <= {m.name for m in hello.maps}  # plus libbpf's .rodata and .kconfig


def test_load_creates_the_maps_the_source_declares(hello):
    hello.load()
    info = hello.map("config").info()
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.HASH, 4, 12, 10240)
    assert info.name == "config"
    assert hello.map("output").info().type == MapType.RINGBUF
    prog = hello.program("hello")
    assert prog.type == ProgType.KPROBE
    assert prog.info().name == "hello"


def test_map_update_and_lookup_through_the_object(hello):
    hello.load()
    key, value = struct.pack("<I", 1000), b"Hi there".ljust(12, b"\0")
    hello.map("config").update(key, value)
    assert hello.map("config").lookup(key) == value


def test_open_mem_gives_the_same_object(compiled, bpf_privileges, bpf_leak_guard):
    data = compiled(CASES_C / "hello.bpf.c").read_bytes()
    with BPFObject.open_mem(data, "hello_mem") as obj:
        obj.load()
        assert obj.map("config").info().max_entries == 10240
        assert obj.program("hello").info().name == "hello"


def test_unknown_program_name_says_which_exist(hello):
    with pytest.raises(ObjectError) as caught:
        hello.program("nope")
    assert caught.value.errno_name == "ENOENT"
    assert caught.value.op == "bpf_object__find_program_by_name"
    assert "no program 'nope'" in str(caught.value) and "['hello']" in str(caught.value)


def test_not_an_elf_file_carries_libbpfs_message(tmp_path, bpf_privileges):
    junk = tmp_path / "junk.bpf.o"
    junk.write_bytes(b"this is not ELF")
    with pytest.raises(ObjectError) as caught:
        BPFObject.open_file(junk)
    assert caught.value.op == "bpf_object__open_file"
    assert "libbpf: elf:" in caught.value.log
    assert "libbpf log" in str(caught.value)


def test_missing_file_is_enoent(tmp_path, bpf_privileges):
    with pytest.raises(ObjectError) as caught:
        BPFObject.open_file(tmp_path / "absent.bpf.o")
    assert caught.value.errno_name == "ENOENT"


def test_verifier_rejection_carries_errno_and_the_verifier_log(compiled, bpf_privileges, bpf_leak_guard):
    with (
        BPFObject.open_file(compiled(CASES_C / "rejected.bpf.c")) as obj,
        pytest.raises(ObjectError) as caught,
    ):
        obj.load()
    err = caught.value
    assert (err.op, err.errno_name) == ("bpf_object__load", "EACCES")
    assert "-- BEGIN PROG LOAD LOG --" in err.log
    assert "R0 invalid mem access 'map_value_or_null'" in str(err)
    assert isinstance(err, L.BPFError)
    again = pickle.loads(pickle.dumps(err))  # crosses the VM and xdist boundaries
    assert (again.errno, again.op, again.log) == (err.errno, err.op, err.log)


def test_the_log_of_one_call_does_not_leak_into_the_next(compiled, bpf_privileges, bpf_leak_guard):
    with BPFObject.open_file(compiled(CASES_C / "rejected.bpf.c")) as obj, pytest.raises(ObjectError):
        obj.load()
    with pytest.raises(ObjectError) as caught, BPFObject.open_file(compiled(CASES_C / "hello.bpf.c")) as obj:
        obj.program("absent")
    assert caught.value.log is None


def test_cgroup_link_is_destroyed_with_the_object(compiled, cgroup2, bpf_privileges, bpf_leak_guard):
    before = L.link_ids()
    cgroup = os.open(cgroup2, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with BPFObject.open_file(compiled(HERE / "c" / "attach.bpf.c")) as obj:
            obj.load()
            link = obj.program("allow_egress").attach_cgroup(cgroup)
            info = L.link_info(link.fd)
            assert info.prog_id == obj.program("allow_egress").info().id
            assert info.id in L.link_ids() - before
    finally:
        os.close(cgroup)
    assert info.id not in L.link_ids()


def test_pinned_link_outlives_destroy_until_unpinned(
    compiled, cgroup2, bpffs, bpf_privileges, bpf_leak_guard
):
    cgroup = os.open(cgroup2, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with BPFObject.open_file(compiled(HERE / "c" / "attach.bpf.c")) as obj:
            obj.load()
            link = obj.program("allow_egress").attach_cgroup(cgroup)
            link.pin(bpffs / "egress")
            link_id = L.link_info(link.fd).id
            link.destroy()
            assert link_id in L.link_ids()
            with pytest.raises(ObjectError, match="was destroyed"):
                link.fd  # noqa: B018
        assert link_id in L.link_ids()  # the pin keeps it, object closed or not
        os.unlink(bpffs / "egress")
    finally:
        os.close(cgroup)


def test_raw_tracepoint_program_counts_syscalls(compiled, bpf_privileges, bpf_leak_guard):
    with BPFObject.open_file(compiled(HERE / "c" / "attach.bpf.c")) as obj:
        obj.load()
        obj.program("count_syscalls").attach_raw_tracepoint("sys_enter")
        for _ in range(10):
            os.getppid()
        (count,) = struct.unpack("<Q", obj.map("hits").lookup(struct.pack("<I", 0)))
    assert count >= 10


def test_closed_object_refuses_use(compiled, bpf_privileges):
    obj = BPFObject.open_file(compiled(CASES_C / "hello.bpf.c"))
    obj.close()
    obj.close()  # twice is fine
    with pytest.raises(ObjectError, match="is closed"):
        obj.programs  # noqa: B018


def test_open_opts_layout_is_libbpf_1_1s():
    assert ctypes.sizeof(O.ObjectOpenOpts) == 80
    assert O.ObjectOpenOpts.kconfig.offset == 40
    assert O.ObjectOpenOpts.kernel_log_level.offset == 72


def test_ring_buffer_left_open_is_freed_with_the_object(compiled, bpf_privileges, bpf_leak_guard):
    """The leak guard fails this test if the ring buffer's mmap kept the map alive."""
    obj = BPFObject.open_file(compiled(CASES_C / "hello.bpf.c"))
    obj.load()
    ring = obj.map("output").ring_buffer()
    assert ring.poll(0) == []
    obj.close()
    with pytest.raises(ObjectError, match="freed"):
        ring.poll(0)
