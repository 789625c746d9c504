"""harness.libbpf: layouts, error mapping, input validation and probes (root tests run on the host kernel)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import pickle
import subprocess
import sys

import pytest

from harness import insn as I
from harness import libbpf as L
from harness.bpf.gates import kernel_version
from harness.libbpf import BPFError, MapType, ProgType

RET0 = I.program(I.mov64_imm(I.R0, 0), I.exit_())


# ---- no kernel needed


@pytest.mark.parametrize(
    "struct_type, size, offsets",
    [
        pytest.param(
            L.MapCreateOpts,
            48,
            {
                "btf_fd": 8,
                "inner_map_fd": 24,
                "map_flags": 28,
                "map_extra": 32,
                "numa_node": 40,
                "map_ifindex": 44,
            },
            id="bpf_map_create_opts",
        ),
        pytest.param(
            L.ProgLoadOpts,
            104,
            {
                "attempts": 8,
                "expected_attach_type": 12,
                "prog_flags": 20,
                "kern_version": 28,
                "attach_btf_obj_fd": 40,
                "fd_array": 48,
                "func_info": 56,
                "line_info": 72,
                "log_level": 88,
                "log_size": 92,
                "log_buf": 96,
            },
            id="bpf_prog_load_opts",
        ),
        pytest.param(
            L.LinkCreateOpts,
            64,
            {"flags": 8, "iter_info": 16, "iter_info_len": 24, "target_btf_id": 28, "_union": 32},
            id="bpf_link_create_opts",
        ),
    ],
)
def test_opts_layouts_match_libbpf_1_1(struct_type, size, offsets):
    assert ctypes.sizeof(struct_type) == size
    assert {name: getattr(struct_type, name).offset for name in offsets} == offsets


def test_error_text_and_names():
    err = BPFError(errno.EACCES, "bpf_prog_load")
    assert str(err) == "bpf_prog_load: EACCES (Permission denied)"
    assert not isinstance(err, OSError)
    assert BPFError(524, "bpf_map_create").errno_name == "ENOTSUPP"
    assert BPFError(errno.EOPNOTSUPP, "x").errno_name == "EOPNOTSUPP"
    with_log = BPFError(errno.EACCES, "bpf_prog_load", log="0: (95) exit\nR0 !read_ok\nprocessed 1 insns\n")
    assert str(with_log).startswith("bpf_prog_load: EACCES (Permission denied)\n")
    assert str(with_log).splitlines()[-2:] == ["  R0 !read_ok", "  processed 1 insns"]


def test_error_pickles():
    err = pickle.loads(pickle.dumps(BPFError(errno.EINVAL, "bpf_prog_load", log="x", detail="y")))
    assert (err.errno, err.errno_name, err.op, err.log, err.detail) == (
        errno.EINVAL,
        "EINVAL",
        "bpf_prog_load",
        "x",
        "y",
    )


def test_open_library_names_the_package():
    with pytest.raises(L.LibbpfMissing) as exc:
        L.open_library("libbpf-does-not-exist.so.1")
    assert str(exc.value).startswith(
        "libbpf.so.1 not found: install the libbpf1 package (apt-get install libbpf1)"
    )
    assert isinstance(exc.value, RuntimeError)


def test_missing_library_raises_on_first_use_not_import(monkeypatch):
    from harness.bpf import libbpf as binding

    monkeypatch.setattr(binding, "_library", None)
    monkeypatch.setattr(binding, "LIBRARY", "libbpf-does-not-exist.so.1")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(L.LibbpfMissing, match=r"apt-get install libbpf1"):
        L.map_create(MapType.HASH, "x", 4, 4, 1)


def test_the_library_opens_by_its_soname_without_asking_ldconfig(monkeypatch):
    """find_library runs ldconfig, a process: 0.2 s each time in a TCG guest."""

    def ldconfig(name):
        raise AssertionError(f"find_library({name!r}) was asked")

    monkeypatch.setattr(ctypes.util, "find_library", ldconfig)
    assert L.open_library().bpf_map_create is not None


def test_another_soname_is_tried_only_when_the_one_written_for_is_missing(monkeypatch):
    from harness.bpf import libbpf as binding

    monkeypatch.setattr(binding, "LIBRARY", "libbpf-does-not-exist.so.1")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libbpf-older.so.0")
    with pytest.raises(L.LibbpfMissing, match=r"tried 'libbpf-older.so.0'"):
        L.open_library()


def test_import_does_not_open_the_library():
    code = "import harness.libbpf, harness.bpf.libbpf as b, sys; sys.exit(0 if b._library is None else 1)"
    assert subprocess.run([sys.executable, "-B", "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(
    "call, errno_name",
    [
        pytest.param(lambda: L.map_info(-1), "EBADF", id="negative fd"),
        pytest.param(lambda: L.map_info("3"), "EINVAL", id="fd of wrong type"),
        pytest.param(
            lambda: L.prog_load(ProgType.SOCKET_FILTER, "x", "GPL", b"\0" * 7), "EINVAL", id="insns not x8"
        ),
        pytest.param(lambda: L.prog_load(ProgType.SOCKET_FILTER, "x", "GPL", b""), "EINVAL", id="no insns"),
        pytest.param(
            lambda: L.prog_load(ProgType.SOCKET_FILTER, "x", "GPL", "r0 = 0"), "EINVAL", id="insns str"
        ),
        pytest.param(lambda: L.obj_pin(0, 42), "EINVAL", id="path of wrong type"),
        pytest.param(lambda: L.obj_get("/sys/fs/bpf/a\0b"), "EINVAL", id="path with NUL"),
        pytest.param(lambda: L.map_create(MapType.HASH, "x", -4, 4, 1), "EINVAL", id="negative key size"),
        pytest.param(lambda: L.prog_get_fd_by_id(1 << 32), "EINVAL", id="id beyond u32"),
    ],
)
def test_bad_input_is_refused_before_the_call(call, errno_name):
    with pytest.raises(BPFError) as exc:
        call()
    assert exc.value.errno_name == errno_name
    assert exc.value.detail


# ---- on the running kernel


@pytest.fixture
def hash_map(bpf_privileges):
    fd = L.map_create(MapType.HASH, "t", 4, 8, 4)
    yield fd
    os.close(fd)


def test_closed_fd_is_ebadf(bpf_privileges):
    fd = L.map_create(MapType.HASH, "closed", 4, 4, 1)
    os.close(fd)
    # Nothing else runs in between, so the number is still free.
    with pytest.raises(BPFError) as exc:
        L.map_lookup_elem(fd, b"\0" * 4)
    assert exc.value.errno_name == "EBADF"
    assert exc.value.op == "bpf_map_lookup_elem"


def test_non_bpf_fd_is_einval(bpf_privileges):
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(BPFError) as exc:
            L.map_info(fd)
    finally:
        os.close(fd)
    assert (exc.value.op, exc.value.errno_name) == ("bpf_obj_get_info_by_fd", "EINVAL")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda fd: L.map_update_elem(fd, b"\0" * 8, b"\0" * 8), id="update long key"),
        pytest.param(lambda fd: L.map_update_elem(fd, b"\0" * 4, b"\0" * 4), id="update short value"),
        pytest.param(lambda fd: L.map_lookup_elem(fd, b"\0" * 2), id="lookup short key"),
        pytest.param(lambda fd: L.map_lookup_elem(fd, b"\0" * 4, 4), id="lookup wrong value size"),
        pytest.param(lambda fd: L.map_delete_elem(fd, b"\0" * 5), id="delete long key"),
        pytest.param(lambda fd: L.map_get_next_key(fd, None, 8), id="next key wrong size"),
        pytest.param(lambda fd: L.map_update_elem(fd, "abcd", b"\0" * 8), id="key str"),
    ],
)
def test_wrong_sizes_are_einval(hash_map, call):
    with pytest.raises(BPFError) as exc:
        call(hash_map)
    assert exc.value.errno_name == "EINVAL"
    assert exc.value.detail


def test_next_key_of_empty_map_is_none(hash_map):
    assert L.map_get_next_key(hash_map, None) is None


def test_next_id_past_the_end_is_none(bpf_privileges):
    assert L.prog_get_next_id(0x7FFFFFFE) is None
    assert L.map_get_next_id(0x7FFFFFFE) is None
    assert L.link_get_next_id(0x7FFFFFFE) is None


def test_pin_into_missing_directory_is_enoent(bpffs, hash_map):
    with pytest.raises(BPFError) as exc:
        L.obj_pin(hash_map, bpffs / "missing" / "pin")
    assert (exc.value.op, exc.value.errno_name) == ("bpf_obj_pin", "ENOENT")


def test_pin_outside_bpffs_is_eperm(tmp_path, hash_map):
    with pytest.raises(BPFError) as exc:
        L.obj_pin(hash_map, tmp_path / "pin")
    assert (exc.value.op, exc.value.errno_name) == ("bpf_obj_pin", "EPERM")


def test_obj_get_of_missing_path_is_enoent(bpffs):
    with pytest.raises(BPFError) as exc:
        L.obj_get(bpffs / "nothing")
    assert (exc.value.op, exc.value.errno_name) == ("bpf_obj_get", "ENOENT")


def test_pin_and_get_round_trip(bpffs, hash_map):
    L.obj_pin(hash_map, bpffs / "m")
    fd = L.obj_get(str(bpffs / "m").encode())
    try:
        assert L.map_info(fd).id == L.map_info(hash_map).id
    finally:
        os.close(fd)


def test_rejection_errno_is_the_verdict_even_with_a_tiny_log(bpf_privileges):
    """A full log buffer would say ENOSPC; the errno must still be the verifier's EACCES."""
    for load in (L.prog_load, L.prog_load_with_log):
        with pytest.raises(BPFError) as exc:
            load(ProgType.SOCKET_FILTER, "tiny", "GPL", I.exit_(), log_level=2, log_size=128)
        assert exc.value.errno_name == "EACCES", load.__name__


def test_rejection_carries_the_log(bpf_privileges):
    with pytest.raises(BPFError) as exc:
        L.prog_load(ProgType.SOCKET_FILTER, "noret", "GPL", I.exit_())
    assert "R0 !read_ok" in exc.value.log
    assert "R0 !read_ok" in str(exc.value)


def _kernel_answer(create) -> bool | None:
    """What bpf() itself says: made one (True), has none (False), refused (None)."""
    try:
        os.close(create())
    except BPFError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return None
        assert exc.errno in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, 524), exc
        return False
    return True


def test_probes_agree_with_what_the_kernel_answers(bpf_privileges):
    assert L.probe_map_type(MapType.HASH).present is True
    assert L.probe_prog_type(ProgType.SOCKET_FILTER).present is True
    assert L.probe_helper(ProgType.SOCKET_FILTER, I.Helper.map_lookup_elem).present is True
    no_helper = L.probe_helper(ProgType.SOCKET_FILTER, 99999)
    assert no_helper.present is False and no_helper.reason

    # ARENA: some hosts refuse it even to root (6.18 here answers EPERM); the probe must say
    # exactly what the kernel says, and an old kernel must never look like it has it.
    arena = L.probe_map_type(MapType.ARENA)
    kernel = _kernel_answer(lambda: L.map_create(MapType.ARENA, None, 0, 0, 1, map_flags=L.BPF_F_MMAPABLE))
    assert arena.present is kernel, arena
    if kernel is None:
        assert "cannot tell whether the kernel has ARENA maps" in arena.reason
        assert "EPERM" in arena.reason or "EACCES" in arena.reason
    if kernel_version(os.uname().release) < kernel_version("6.9"):
        assert arena.present is not True


def test_a_probe_is_never_read_as_a_bool(bpf_privileges):
    with pytest.raises(TypeError, match="present, absent or unknown"):
        bool(L.probe_map_type(MapType.HASH))


RESTRICTED = ["setpriv", "--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon",
              "--bounding-set=-all,+bpf,+perfmon"]  # fmt: skip


def test_a_refused_probe_is_unknown_and_names_the_missing_capability(bpf_privileges):
    """Really refused: a process with only CAP_BPF and CAP_PERFMON (a container, a CI runner)."""
    if os.geteuid() != 0:
        pytest.skip("dropping to CAP_BPF+CAP_PERFMON with setpriv needs root; this run is not root")
    code = (
        "from harness import libbpf as L\n"
        "for p in (L.probe_map_type(L.MapType.HASH), L.probe_map_type(L.MapType.DEVMAP)):\n"
        "    print(p.present, p.reason, sep='|')\n"
    )
    done = subprocess.run(
        [*RESTRICTED, sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    hash_line, devmap_line = done.stdout.splitlines()
    assert hash_line == "True|"  # CAP_BPF is enough for a hash map
    present, reason = devmap_line.split("|")
    assert present == "None"  # DEVMAP needs CAP_NET_ADMIN: refused, so unknown, not absent
    assert "refused the probe with EPERM" in reason and "lacks CAP_NET_ADMIN, CAP_SYS_ADMIN" in reason


def test_helper_probe_has_no_false_positive(bpf_privileges):
    # bpf_skb_store_bytes (9) is for packet programs; libbpf 1.1's own probe says yes on >= 6.10.
    assert L.probe_helper(ProgType.KPROBE, 9).present is False


def test_libbpf_version():
    major, minor = L.libbpf_version()
    assert (major, minor) >= (1, 1)
