"""Loading accepted programs: fds, names, types, instruction counts, tags and map references."""

from __future__ import annotations

import os
import re

import pytest

from harness import insn as I
from harness import libbpf as L
from harness.libbpf import AttachType, MapType, ProgType

RET0 = I.program(I.mov64_imm(I.R0, 0), I.exit_())


def test_hello_socket_filter(close_later):
    fd = close_later(L.prog_load(ProgType.SOCKET_FILTER, "hello", "GPL", RET0))
    assert fd >= 0
    info = L.prog_info(fd)
    assert (info.name, info.type, info.insn_count, info.xlated_prog_len) == (
        "hello",
        ProgType.SOCKET_FILTER,
        2,
        16,
    )
    assert re.fullmatch(r"[0-9a-f]{16}", info.tag)
    assert info.created_by_uid == os.getuid()


def test_a_loaded_program_is_listed_by_id(close_later, bpf_object_ids):
    fd = close_later(L.prog_load(ProgType.SOCKET_FILTER, "hello", "GPL", RET0))
    assert L.prog_info(fd).id in L.prog_ids()


def test_hello_kprobe(close_later):
    fd = close_later(L.prog_load(ProgType.KPROBE, "hello", "GPL", RET0))
    info = L.prog_info(fd)
    assert (info.name, info.type, info.insn_count) == ("hello", ProgType.KPROBE, 2)


def typed(prog_type: ProgType, attach_type: AttachType | None, id: str):
    """One program type, gated (harness/bpf/gates.toml): skipped where the probe cannot tell,
    e.g. SCHED_CLS, XDP and CGROUP_SOCK need CAP_NET_ADMIN, which a CAP_BPF-only process lacks."""
    return pytest.param(prog_type, attach_type, id=id, marks=pytest.mark.requires(prog_type=prog_type))


@pytest.mark.parametrize(
    "prog_type, attach_type",
    [
        typed(ProgType.SCHED_CLS, None, id="sched-cls"),
        typed(ProgType.TRACEPOINT, None, id="tracepoint"),
        typed(ProgType.XDP, None, id="xdp"),
        typed(ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, id="cgroup-skb"),
        typed(ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, id="cgroup-sock"),
        typed(ProgType.RAW_TRACEPOINT, None, id="raw-tracepoint"),
    ],
)
def test_program_types_load(close_later, prog_type, attach_type):
    fd = close_later(L.prog_load(prog_type, "typed", "GPL", RET0, expected_attach_type=attach_type))
    info = L.prog_info(fd)
    assert (info.type, info.name, info.insn_count) == (prog_type, "typed", 2)


def test_same_instructions_twice_give_two_ids_and_one_tag(close_later):
    first = L.prog_info(close_later(L.prog_load(ProgType.SOCKET_FILTER, "hello", "GPL", RET0)))
    second = L.prog_info(close_later(L.prog_load(ProgType.SOCKET_FILTER, "hello", "GPL", RET0)))
    assert first.id != second.id
    assert first.tag == second.tag


def test_different_instructions_give_another_tag(close_later):
    ret1 = I.program(I.mov64_imm(I.R0, 1), I.exit_())
    a = L.prog_info(close_later(L.prog_load(ProgType.SOCKET_FILTER, "a", "GPL", RET0)))
    b = L.prog_info(close_later(L.prog_load(ProgType.SOCKET_FILTER, "b", "GPL", ret1)))
    assert a.tag != b.tag


def test_verifier_log_of_accepted_program(close_later):
    fd, log = L.prog_load_with_log(ProgType.SOCKET_FILTER, "logged", "GPL", RET0)
    close_later(fd)
    assert fd >= 0
    assert "processed 2 insns" in log


def test_program_referencing_a_map_reports_it(close_later):
    map_fd = close_later(L.map_create(MapType.ARRAY, "ref", 4, 8, 1))
    prog = I.program(
        I.st_mem(I.W, I.R10, -4, 0),  # key = 0 on the stack
        I.mov64_reg(I.R2, I.R10),
        I.alu64_imm(I.ADD, I.R2, -4),
        I.ld_map_fd(I.R1, map_fd),
        I.call(I.Helper.map_lookup_elem),
        I.mov64_imm(I.R0, 0),
        I.exit_(),
    )
    fd = close_later(L.prog_load(ProgType.SOCKET_FILTER, "uses_map", "GPL", prog))
    assert L.prog_info(fd).nr_map_ids == 1


def test_long_program_instruction_count(close_later):
    body = [I.mov64_imm(I.R0, 0)] + [I.alu64_imm(I.ADD, I.R0, 1) for _ in range(100)] + [I.exit_()]
    fd = close_later(L.prog_load(ProgType.SOCKET_FILTER, "long", "GPL", I.program(*body)))
    assert L.prog_info(fd).insn_count == 102
