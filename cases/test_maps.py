"""Map creation, info read-back, element operations and the errors of bad attributes."""

from __future__ import annotations

import errno
import mmap
import os
import struct

import pytest

from harness import libbpf as L
from harness.bpf import btf
from harness.bpf.gates import kernel_version
from harness.libbpf import BPFError, MapType

PAGE = mmap.PAGESIZE


def test_origin_hash_map_named_config(close_later):
    fd = close_later(L.map_create(MapType.HASH, "config", 4, 12, 10240))
    assert fd >= 0
    info = L.map_info(fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries, info.name) == (
        MapType.HASH,
        4,
        12,
        10240,
        "config",
    )


def test_a_new_map_is_listed_by_id(close_later, bpf_object_ids):
    fd = close_later(L.map_create(MapType.HASH, "config", 4, 12, 10240))
    assert L.map_info(fd).id in L.map_ids()


def typed(map_type: MapType, *values, id: str):
    """One map type's parameters, gated by the first kernel that has the type (harness/bpf/gates.toml)."""
    return pytest.param(map_type, *values, id=id, marks=pytest.mark.requires(map_type=map_type))


@pytest.mark.parametrize(
    "map_type, key_size, value_size, max_entries, flags",
    [
        typed(MapType.ARRAY, 4, 8, 16, 0, id="array"),
        typed(MapType.HASH, 8, 16, 128, L.BPF_F_NO_PREALLOC, id="hash-no-prealloc"),
        typed(MapType.PERCPU_HASH, 8, 16, 128, 0, id="percpu-hash"),
        typed(MapType.PERCPU_ARRAY, 4, 8, 4, 0, id="percpu-array"),
        typed(MapType.LRU_HASH, 8, 8, 256, 0, id="lru-hash"),
        typed(MapType.LRU_PERCPU_HASH, 8, 8, 256, 0, id="lru-percpu-hash"),
        typed(MapType.LPM_TRIE, 8, 8, 64, L.BPF_F_NO_PREALLOC, id="lpm-trie"),
        typed(MapType.RINGBUF, 0, 0, 4 * PAGE, 0, id="ringbuf"),
        typed(MapType.QUEUE, 0, 8, 32, 0, id="queue"),
        typed(MapType.STACK, 0, 8, 32, 0, id="stack"),
        typed(MapType.BLOOM_FILTER, 0, 4, 100, 0, id="bloom-filter"),
    ],
)
def test_common_map_types_read_back(close_later, map_type, key_size, value_size, max_entries, flags):
    name = f"t_{map_type.name.lower()}"[:15]
    fd = close_later(L.map_create(map_type, name, key_size, value_size, max_entries, map_flags=flags))
    assert fd >= 0
    info = L.map_info(fd)
    assert info.type == map_type
    assert (info.key_size, info.value_size, info.max_entries) == (key_size, value_size, max_entries)
    assert info.map_flags == flags
    assert info.name == name


def test_rdonly_flag_belongs_to_the_fd_not_the_map(close_later):
    fd = close_later(L.map_create(MapType.ARRAY, "ro", 4, 8, 2, map_flags=L.BPF_F_RDONLY))
    # The kernel keeps only permanent flags in the map; RDONLY limits this fd.
    assert L.map_info(fd).map_flags == 0
    assert L.map_lookup_elem(fd, b"\0" * 4, 8) == b"\0" * 8
    with pytest.raises(BPFError) as exc:
        L.map_update_elem(fd, b"\0" * 4, b"\1" * 8)
    assert exc.value.errno_name == "EPERM"


def test_hash_update_lookup_delete(close_later):
    fd = close_later(L.map_create(MapType.HASH, "rt", 4, 12, 8))
    key, value = struct.pack("<I", 7), b"twelve bytes"
    L.map_update_elem(fd, key, value)
    assert L.map_lookup_elem(fd, key, 12) == value
    L.map_delete_elem(fd, key)
    with pytest.raises(BPFError) as exc:
        L.map_lookup_elem(fd, key, 12)
    assert exc.value.errno_name == "ENOENT"
    with pytest.raises(BPFError) as exc:
        L.map_delete_elem(fd, key)
    assert exc.value.errno_name == "ENOENT"


def test_get_next_key_walks_every_key(close_later):
    fd = close_later(L.map_create(MapType.HASH, "walk", 4, 4, 16))
    keys = {struct.pack("<I", k) for k in (1, 20, 300)}
    for k in keys:
        L.map_update_elem(fd, k, b"\0" * 4)
    seen, current = [], None
    while (current := L.map_get_next_key(fd, current, 4)) is not None:
        seen.append(current)
    assert sorted(seen) == sorted(keys)


@pytest.mark.parametrize(
    "flag, existing, expected",
    [
        pytest.param(L.BPF_NOEXIST, True, "EEXIST", id="noexist-on-existing"),
        pytest.param(L.BPF_EXIST, False, "ENOENT", id="exist-on-missing"),
    ],
)
def test_update_flags_refuse(close_later, flag, existing, expected):
    fd = close_later(L.map_create(MapType.HASH, "flags", 4, 4, 4))
    if existing:
        L.map_update_elem(fd, b"\1\0\0\0", b"\0" * 4)
    with pytest.raises(BPFError) as exc:
        L.map_update_elem(fd, b"\1\0\0\0", b"\2" * 4, flag)
    assert exc.value.errno_name == expected
    assert exc.value.op == "bpf_map_update_elem"


def test_array_elements_exist_zeroed_and_cannot_be_deleted(close_later):
    fd = close_later(L.map_create(MapType.ARRAY, "arr", 4, 8, 4))
    assert L.map_lookup_elem(fd, struct.pack("<I", 3), 8) == b"\0" * 8
    with pytest.raises(BPFError) as exc:
        L.map_delete_elem(fd, struct.pack("<I", 3))
    assert exc.value.errno_name == "EINVAL"
    with pytest.raises(BPFError) as exc:
        L.map_lookup_elem(fd, struct.pack("<I", 4), 8)
    assert exc.value.errno_name == "ENOENT"


def test_percpu_array_value_has_one_slot_per_possible_cpu(close_later):
    fd = close_later(L.map_create(MapType.PERCPU_ARRAY, "pcpu", 4, 4, 1))
    ncpus = L.num_possible_cpus()
    # Each CPU's value is padded to 8 bytes.
    value = b"".join(struct.pack("<Q", cpu) for cpu in range(ncpus))
    L.map_update_elem(fd, b"\0" * 4, value)
    assert L.map_lookup_elem(fd, b"\0" * 4) == value


HUGE = ("E2BIG", "ENOMEM")


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        pytest.param((MapType.HASH, "k0", 0, 4, 8), {}, ("EINVAL",), id="hash-key-size-0"),
        pytest.param((MapType.HASH, "v0", 4, 0, 8), {}, ("EINVAL",), id="hash-value-size-0"),
        pytest.param((MapType.HASH, "m0", 4, 4, 0), {}, ("EINVAL",), id="hash-max-entries-0"),
        pytest.param((MapType.HASH, "flag", 4, 4, 8), {"map_flags": 1 << 30}, ("EINVAL",), id="unknown-flag"),
        pytest.param((9999, "type", 4, 4, 8), {}, ("EINVAL",), id="unknown-type"),
        pytest.param((MapType.HASH, "bad-name", 4, 4, 8), {}, ("EINVAL",), id="name-with-dash"),
        pytest.param((MapType.ARRAY, "arr8", 8, 4, 8), {}, ("EINVAL",), id="array-key-size-8"),
        pytest.param((MapType.RINGBUF, "rb", 0, 0, 1000), {}, ("EINVAL",), id="ringbuf-not-power-of-2"),
        pytest.param((MapType.LPM_TRIE, "lpm", 8, 8, 8), {}, ("EINVAL",), id="lpm-trie-preallocated"),
        pytest.param(
            (MapType.LRU_HASH, "lru", 4, 4, 8),
            {"map_flags": L.BPF_F_NO_PREALLOC},
            ("ENOTSUPP",),
            id="lru-no-prealloc",
        ),
        pytest.param((MapType.HASH, "bigval", 4, 1 << 30, 8), {}, HUGE, id="hash-huge-value"),
        pytest.param((MapType.ARRAY, "bigarr", 4, 1 << 20, 1 << 30), {}, HUGE, id="array-huge"),
    ],
)
def test_invalid_attributes_are_refused(args, kwargs, expected):
    with pytest.raises(BPFError) as exc:
        fd = L.map_create(*args, **kwargs)
        os.close(fd)  # only reached if the kernel wrongly accepted it
    assert exc.value.errno_name in expected
    assert exc.value.op == "bpf_map_create"
    assert str(exc.value).startswith(f"bpf_map_create: {exc.value.errno_name} (")


@pytest.mark.requires(map_type="USER_RINGBUF")
def test_user_ringbuf(close_later):
    fd = close_later(L.map_create(MapType.USER_RINGBUF, "urb", 0, 0, 2 * PAGE))
    info = L.map_info(fd)
    assert (info.type, info.max_entries) == (MapType.USER_RINGBUF, 2 * PAGE)


@pytest.mark.requires(map_type="CGRP_STORAGE")
def test_cgrp_storage_keyed_by_cgroup_fd(close_later, cgroup2):
    btf_fd = close_later(L.btf_load(btf.int_only()))
    fd = close_later(
        L.map_create(
            MapType.CGRP_STORAGE,
            "cgst",
            4,
            4,
            0,
            map_flags=L.BPF_F_NO_PREALLOC,
            btf_fd=btf_fd,
            btf_key_type_id=btf.INT_TYPE_ID,
            btf_value_type_id=btf.INT_TYPE_ID,
        )
    )
    info = L.map_info(fd)
    assert (info.type, info.key_size, info.value_size, info.map_flags) == (
        MapType.CGRP_STORAGE,
        4,
        4,
        L.BPF_F_NO_PREALLOC,
    )
    cgroup = close_later(os.open(cgroup2, os.O_RDONLY | os.O_DIRECTORY))
    key = struct.pack("<i", cgroup)
    L.map_update_elem(fd, key, struct.pack("<i", 42))
    assert L.map_lookup_elem(fd, key, 4) == struct.pack("<i", 42)


@pytest.mark.requires(map_type="ARENA")
def test_arena(close_later):
    fd = close_later(L.map_create(MapType.ARENA, "arena", 0, 0, 4, map_flags=L.BPF_F_MMAPABLE))
    info = L.map_info(fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.ARENA, 0, 0, 4)
    assert info.map_flags & L.BPF_F_MMAPABLE


def test_arena_is_unknown_before_6_9():
    """The other side of the ARENA gate: older kernels refuse the type number itself."""
    if kernel_version(os.uname().release) >= kernel_version("6.9"):
        pytest.skip("kernel has ARENA maps (>= 6.9)")
    with pytest.raises(BPFError) as exc:
        os.close(L.map_create(MapType.ARENA, "arena", 0, 0, 4, map_flags=L.BPF_F_MMAPABLE))
    assert exc.value.errno == errno.EINVAL
