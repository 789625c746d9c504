"""Object lifetimes: what dies with the process that loaded it, and what a pin or an attachment keeps.

Children come from a multiprocessing fork server, never a bare fork of this
process: the server was started with exec, so they share no bpf fds with it, and
each child costs a fork instead of an interpreter start (_child.py). Ids are
compared as sets, with a deadline: a map held by a closing program goes only
after an RCU grace period.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import insn as I
from harness import libbpf as L
from harness.libbpf import AttachType, LinkType, MapType, ProgType

# Every case here follows objects by id after their fds are gone (CAP_SYS_ADMIN).
pytestmark = pytest.mark.usefixtures("bpf_object_ids")

CHILD = Path(__file__).with_name("_child.py")
DEADLINE = 5.0
# How long an object must survive to count as "kept alive": far above the RCU delay (ms).
STAYS = 0.3


@functools.cache
def forks():
    """The fork server's context and _child, set up when a case first needs a child, not when
    this file is imported (a host that only collects it, another test module that uses a fork
    server of its own): the preload list is the process's one fork server's."""
    if str(CHILD.parent) not in sys.path:  # the fork server imports _child by name (--import-mode=importlib)
        sys.path.insert(0, str(CHILD.parent))
    import _child  # noqa: PLC0415

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["_child"])
    return context, _child


def run_child(*args: str) -> dict:
    """_child's answer for args, from a child process that has exited by the time this returns."""
    context, child_module = forks()
    answer, theirs = context.Pipe(duplex=False)
    child = context.Process(target=child_module.serve, args=(list(args), theirs), name=f"child {args[0]}")
    child.start()
    theirs.close()
    got = answer.recv() if answer.poll(60) else None
    child.join(60)
    assert child.exitcode == 0 and got is not None, (
        f"child {args} failed: exit code {child.exitcode} (its traceback is in the captured stderr)"
    )
    return got


def alive_after(ids_of: Callable[[], set[int]], ids: set[int], timeout: float = DEADLINE) -> set[int]:
    """The members of ids still enumerated once they are all gone or the timeout passed."""
    deadline = time.monotonic() + timeout
    while (left := ids & ids_of()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def still_there(ids_of: Callable[[], set[int]], ids: set[int]) -> set[int]:
    time.sleep(STAYS)
    return ids & ids_of()


def open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_objects_vanish_when_their_loader_exits():
    ids = run_child("load")
    assert all(isinstance(v, int) and v > 0 for v in ids.values()), ids
    assert alive_after(L.prog_ids, {ids["prog_id"]}) == set()
    assert alive_after(L.map_ids, {ids["held_map_id"], ids["lone_map_id"]}) == set()


def test_map_held_by_program_outlives_its_fd(close_later):
    map_fd = L.map_create(MapType.ARRAY, "held", 4, 8, 1)
    map_id = L.map_info(map_fd).id
    prog_fd = L.prog_load(
        ProgType.SOCKET_FILTER,
        "holder",
        "GPL",
        I.program(I.ld_map_fd(I.R1, map_fd), I.mov64_imm(I.R0, 0), I.exit_()),
    )
    prog_id = L.prog_info(prog_fd).id
    os.close(map_fd)
    try:
        assert still_there(L.map_ids, {map_id}) == {map_id}
    finally:
        os.close(prog_fd)
    assert alive_after(L.prog_ids, {prog_id}) == set()
    assert alive_after(L.map_ids, {map_id}) == set()


def test_legacy_cgroup_attach_outlives_loader_until_detached(cgroup2, close_later):
    prog_id = run_child("attach", str(cgroup2))["prog_id"]
    cgroup = close_later(open_dir(cgroup2))
    try:
        assert still_there(L.prog_ids, {prog_id}) == {prog_id}
        query = L.prog_query(cgroup, AttachType.CGROUP_INET_EGRESS)
        assert query.prog_ids == [prog_id]
        assert query.attach_flags == L.BPF_F_ALLOW_MULTI
    finally:
        prog = L.prog_get_fd_by_id(prog_id)
        try:
            L.prog_detach2(prog, cgroup, AttachType.CGROUP_INET_EGRESS)
        finally:
            os.close(prog)
    assert L.prog_query(cgroup, AttachType.CGROUP_INET_EGRESS).prog_ids == []
    assert alive_after(L.prog_ids, {prog_id}) == set()


def test_pinned_program_outlives_loader_until_unpinned(bpffs):
    pin = bpffs / "prog"
    prog_id = run_child("pin", str(pin))["prog_id"]
    try:
        assert still_there(L.prog_ids, {prog_id}) == {prog_id}
        fd = L.obj_get(pin)
        try:
            info = L.prog_info(fd)
        finally:
            os.close(fd)
        assert (info.id, info.name) == (prog_id, "child_pinned")
    finally:
        pin.unlink()
    assert alive_after(L.prog_ids, {prog_id}) == set()


def test_link_goes_with_its_process(cgroup2, close_later):
    ids = run_child("link", str(cgroup2))
    assert alive_after(L.link_ids, {ids["link_id"]}) == set()
    assert alive_after(L.prog_ids, {ids["prog_id"]}) == set()
    cgroup = close_later(open_dir(cgroup2))
    assert L.prog_query(cgroup, AttachType.CGROUP_INET_INGRESS).prog_ids == []


def test_pinned_link_outlives_loader_until_unpinned(cgroup2, bpffs, close_later):
    pin = bpffs / "link"
    ids = run_child("link", str(cgroup2), str(pin))
    cgroup = close_later(open_dir(cgroup2))
    try:
        assert still_there(L.link_ids, {ids["link_id"]}) == {ids["link_id"]}
        assert L.prog_query(cgroup, AttachType.CGROUP_INET_INGRESS).prog_ids == [ids["prog_id"]]
        fd = L.obj_get(pin)
        try:
            info = L.link_info(fd)
        finally:
            os.close(fd)
        assert (info.id, info.type, info.prog_id) == (ids["link_id"], LinkType.CGROUP, ids["prog_id"])
    finally:
        pin.unlink()
    assert alive_after(L.link_ids, {ids["link_id"]}) == set()
    assert alive_after(L.prog_ids, {ids["prog_id"]}) == set()
    assert L.prog_query(cgroup, AttachType.CGROUP_INET_INGRESS).prog_ids == []


def test_link_detach_keeps_link_fd_but_detaches_program(cgroup2, close_later):
    cgroup = close_later(open_dir(cgroup2))
    prog = close_later(
        L.prog_load(
            ProgType.CGROUP_SKB,
            "linked",
            "GPL",
            I.program(I.mov64_imm(I.R0, 1), I.exit_()),
            expected_attach_type=AttachType.CGROUP_INET_INGRESS,
        )
    )
    link = close_later(L.link_create(prog, cgroup, AttachType.CGROUP_INET_INGRESS))
    prog_id = L.prog_info(prog).id
    assert L.prog_query(cgroup, AttachType.CGROUP_INET_INGRESS).prog_ids == [prog_id]
    L.link_detach(link)
    assert L.prog_query(cgroup, AttachType.CGROUP_INET_INGRESS).prog_ids == []
    # A detached link still exists while its fd is open; it just points at nothing.
    assert L.link_info(link).id in L.link_ids()


@pytest.mark.parametrize("kind", ["prog", "map"])
def test_closing_the_last_fd_frees_the_object(kind):
    if kind == "prog":
        fd = L.prog_load(ProgType.SOCKET_FILTER, "short", "GPL", I.program(I.mov64_imm(I.R0, 0), I.exit_()))
        id_, ids_of = L.prog_info(fd).id, L.prog_ids
    else:
        fd = L.map_create(MapType.HASH, "short", 4, 4, 1)
        id_, ids_of = L.map_info(fd).id, L.map_ids
    try:
        assert id_ in ids_of()
    finally:
        os.close(fd)
    assert alive_after(ids_of, {id_}) == set()
