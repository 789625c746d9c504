"""Call the system libbpf (libbpf.so.1, API 1.1) through ctypes: one function per bpf() command.

Every failure raises BPFError carrying the errno, its name and the libbpf call
that failed (plus the verifier log for program loads). The library is opened
lazily, so this module imports on machines without libbpf; the first call
then raises LibbpfMissing.

    fd = map_create(MapType.HASH, "config", 4, 12, 10240)
    map_info(fd).max_entries  # 10240
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno as _errno
import os
import struct

from harness.bpf.uapi import BPF_ANY, BPF_F_NUMA_NODE, MapType

LIBRARY = "libbpf.so.1"
MISSING_MESSAGE = f"{LIBRARY} not found: install the libbpf1 package (apt-get install libbpf1)"

# The kernel caps log_size at UINT_MAX >> 2 since 5.2; 16 MiB holds any log we provoke.
LOG_SIZE = 16 * 1024 * 1024

# Kernel-internal errno values that leak to user space; the C library has no name for them.
_KERNEL_ERRNOS = {524: ("ENOTSUPP", "Operation is not supported")}
# Aliased values: use the name the kernel sources use (errno.errorcode says ENOTSUP).
_PREFERRED_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP", _errno.EAGAIN: "EAGAIN"}

PathArg = str | bytes | os.PathLike


class LibbpfMissing(RuntimeError):
    """libbpf.so.1 cannot be loaded (or lacks the 1.x API)."""


def errno_name(err: int) -> str:
    if err in _KERNEL_ERRNOS:
        return _KERNEL_ERRNOS[err][0]
    return _PREFERRED_NAMES.get(err) or _errno.errorcode.get(err, f"errno {err}")


def strerror(err: int) -> str:
    """The message for err, also for the kernel-internal errnos the C library has no text for."""
    if err in _KERNEL_ERRNOS:
        return _KERNEL_ERRNOS[err][1]
    return os.strerror(err)


class BPFError(Exception):
    """A libbpf call failed (or its arguments were refused before the call).

    str(): "bpf_prog_load: EACCES (Permission denied)" followed by the last
    lines of the verifier log when there is one.
    """

    LOG_TAIL_LINES = 8

    def __init__(self, err: int, op: str, log: str | None = None, detail: str | None = None):
        # All constructor arguments go to args so the exception pickles (xdist, execnet).
        super().__init__(err, op, log, detail)
        self.errno = err
        self.errno_name = errno_name(err)
        self.op = op
        self.log = log
        self.detail = detail

    def __str__(self) -> str:
        text = f"{self.op}: {self.errno_name} ({strerror(self.errno)})"
        if self.detail:
            text += f": {self.detail}"
        if self.log:
            tail = [line for line in self.log.splitlines() if line.strip()][-self.LOG_TAIL_LINES :]
            text += "\nverifier log (last lines):\n  " + "\n  ".join(tail)
        return text


_PERCPU_MAPS = {
    MapType.PERCPU_HASH,
    MapType.PERCPU_ARRAY,
    MapType.LRU_PERCPU_HASH,
    MapType.PERCPU_CGROUP_STORAGE,
}


def _u32s(*names: str) -> list[tuple[str, type]]:
    """Consecutive __u32 fields: _u32s("a", "b") is [("a", c_uint32), ("b", c_uint32)]."""
    return [(name, ctypes.c_uint32) for name in names]


# Option structs in their libbpf 1.1 layout, fields grouped as in its bpf.h; later libbpf
# versions accept them via sz.
class MapCreateOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        *_u32s("btf_fd", "btf_key_type_id", "btf_value_type_id", "btf_vmlinux_value_type_id"),
        *_u32s("inner_map_fd", "map_flags"),
        ("map_extra", ctypes.c_uint64),
        *_u32s("numa_node", "map_ifindex"),
    ]


class ProgLoadOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        *_u32s("expected_attach_type", "prog_btf_fd", "prog_flags", "prog_ifindex", "kern_version"),
        *_u32s("attach_btf_id", "attach_prog_fd", "attach_btf_obj_fd"),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        *_u32s("func_info_cnt", "func_info_rec_size"),
        ("line_info", ctypes.c_void_p),
        *_u32s("line_info_cnt", "line_info_rec_size"),
        *_u32s("log_level", "log_size"),
        ("log_buf", ctypes.c_void_p),
    ]


class LinkCreateOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("flags", ctypes.c_uint32),
        ("iter_info", ctypes.c_void_p),
        ("iter_info_len", ctypes.c_uint32),
        ("target_btf_id", ctypes.c_uint32),
        ("_union", ctypes.c_uint8 * 32),  # per-attach-type fields, unused here
    ]


_u32 = ctypes.c_uint32
_u32p = ctypes.POINTER(ctypes.c_uint32)
_int = ctypes.c_int
_vp = ctypes.c_void_p
_PROTOTYPES: dict[str, tuple[type, list]] = {
    "bpf_map_create": (_int, [_int, ctypes.c_char_p, _u32, _u32, _u32, ctypes.POINTER(MapCreateOpts)]),
    "bpf_prog_load": (
        _int,
        [_int, ctypes.c_char_p, ctypes.c_char_p, _vp, ctypes.c_size_t, ctypes.POINTER(ProgLoadOpts)],
    ),
    "bpf_btf_load": (_int, [_vp, ctypes.c_size_t, _vp]),
    "bpf_obj_pin": (_int, [_int, ctypes.c_char_p]),
    "bpf_obj_get": (_int, [ctypes.c_char_p]),
    "bpf_prog_attach": (_int, [_int, _int, _int, ctypes.c_uint]),
    "bpf_prog_detach2": (_int, [_int, _int, _int]),
    "bpf_prog_query": (_int, [_int, _int, _u32, _u32p, _u32p, _u32p]),
    "bpf_link_create": (_int, [_int, _int, _int, ctypes.POINTER(LinkCreateOpts)]),
    "bpf_link_detach": (_int, [_int]),
    "bpf_prog_get_next_id": (_int, [_u32, _u32p]),
    "bpf_map_get_next_id": (_int, [_u32, _u32p]),
    "bpf_link_get_next_id": (_int, [_u32, _u32p]),
    "bpf_prog_get_fd_by_id": (_int, [_u32]),
    "bpf_map_get_fd_by_id": (_int, [_u32]),
    "bpf_link_get_fd_by_id": (_int, [_u32]),
    "bpf_obj_get_info_by_fd": (_int, [_int, _vp, _u32p]),
    "bpf_map_update_elem": (_int, [_int, _vp, _vp, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_int, [_int, _vp, _vp]),
    "bpf_map_delete_elem": (_int, [_int, _vp]),
    "bpf_map_get_next_key": (_int, [_int, _vp, _vp]),
    "libbpf_probe_bpf_map_type": (_int, [_int, _vp]),
    "libbpf_probe_bpf_prog_type": (_int, [_int, _vp]),
    "libbpf_probe_bpf_helper": (_int, [_int, _int, _vp]),
    "libbpf_num_possible_cpus": (_int, []),
    "libbpf_major_version": (_u32, []),
    "libbpf_minor_version": (_u32, []),
}

_PROTOTYPE_ARGC = {name: len(argtypes) for name, (_, argtypes) in _PROTOTYPES.items()}

_library: ctypes.CDLL | None = None


def open_library(name: str | None = None) -> ctypes.CDLL:
    """Open libbpf and declare every prototype; raises LibbpfMissing with the package to install."""
    if name is None:
        # the dynamic linker finds the soname this module is written for by itself; find_library
        # runs ldconfig (a process: 0.2 s in a TCG guest), so it is asked only what else there is
        try:
            return open_library(LIBRARY)
        except LibbpfMissing:
            other = ctypes.util.find_library("bpf")
            if other is None or other == LIBRARY:
                raise
            name = other
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise LibbpfMissing(f"{MISSING_MESSAGE} (tried {name!r}: {exc})") from exc
    try:
        for func_name, (restype, argtypes) in _PROTOTYPES.items():
            func = getattr(lib, func_name)
            func.restype = restype
            func.argtypes = argtypes
    except AttributeError as exc:
        # libbpf 0.x (libbpf.so.0) lacks the 1.x calls this module is written against.
        raise LibbpfMissing(
            f"{MISSING_MESSAGE} ({name!r} lacks {exc.name or exc}: need libbpf >= 1.1)"
        ) from exc
    return lib


def library() -> ctypes.CDLL:
    """The process's libbpf, opened (with every prototype declared) on first use."""
    global _library
    if _library is None:
        _library = open_library()
    return _library


def _call(op: str, *args) -> int:
    # libbpf 1.x returns -errno from every call (and sets errno too).
    ret = getattr(library(), op)(*args)
    if ret < 0:
        raise BPFError(-ret, op)
    return ret


# ---- argument checks: refuse in Python what would make C read or write out of bounds


def _check_fd(fd, op: str) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise BPFError(_errno.EINVAL, op, detail=f"fd must be an int, got {type(fd).__name__}")
    if not 0 <= fd < 1 << 31:
        raise BPFError(_errno.EBADF, op, detail=f"fd {fd} is not a valid file descriptor")
    return fd


def check_u32(value, what: str, op: str) -> int:
    """value, if it is an int that fits a __u32; else BPFError(EINVAL) from op, naming what."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise BPFError(_errno.EINVAL, op, detail=f"{what} must be an int in [0, 2**32), got {value!r}")
    return value


def _check_bytes(data, what: str, op: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BPFError(_errno.EINVAL, op, detail=f"{what} must be bytes, got {type(data).__name__}")
    return bytes(data)


def _check_path(path, op: str) -> bytes:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise BPFError(
            _errno.EINVAL, op, detail=f"path must be str, bytes or os.PathLike, got {type(path).__name__}"
        )
    raw = os.fsencode(path)
    if not raw or b"\0" in raw:
        raise BPFError(_errno.EINVAL, op, detail=f"path {raw!r} is empty or contains NUL")
    return raw


def _name(name: str | bytes | None, op: str) -> bytes | None:
    if name is None or isinstance(name, bytes):
        return name
    if isinstance(name, str):
        return name.encode()
    raise BPFError(_errno.EINVAL, op, detail=f"name must be str, got {type(name).__name__}")


def _buffer(data: bytes):
    # An empty key (queue, stack, bloom filter maps) is passed as NULL.
    return ctypes.create_string_buffer(data, len(data)) if data else None


# ---- maps


def map_create(
    map_type: int,
    name: str | None,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    map_flags: int = 0,
    inner_map_fd: int | None = None,
    map_extra: int = 0,
    numa_node: int | None = None,
    btf_fd: int | None = None,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
) -> int:
    op = "bpf_map_create"
    opts = MapCreateOpts(sz=ctypes.sizeof(MapCreateOpts))
    opts.map_flags = check_u32(map_flags, "map_flags", op)
    if inner_map_fd is not None:
        opts.inner_map_fd = _check_fd(inner_map_fd, op)
    if not 0 <= map_extra < 1 << 64:
        raise BPFError(_errno.EINVAL, op, detail=f"map_extra {map_extra} does not fit in 64 bits")
    opts.map_extra = map_extra
    if numa_node is not None:
        # The kernel only reads numa_node when this flag says so.
        opts.numa_node = check_u32(numa_node, "numa_node", op)
        opts.map_flags |= BPF_F_NUMA_NODE
    if btf_fd is not None:
        opts.btf_fd = _check_fd(btf_fd, op)
        opts.btf_key_type_id = check_u32(btf_key_type_id, "btf_key_type_id", op)
        opts.btf_value_type_id = check_u32(btf_value_type_id, "btf_value_type_id", op)
    return _call(
        op,
        check_u32(int(map_type), "map_type", op),
        _name(name, op),
        check_u32(key_size, "key_size", op),
        check_u32(value_size, "value_size", op),
        check_u32(max_entries, "max_entries", op),
        ctypes.byref(opts),
    )


def btf_load(data: bytes) -> int:
    """Load a raw BTF blob (see harness.bpf.btf) and return its fd."""
    op = "bpf_btf_load"
    raw = _check_bytes(data, "BTF data", op)
    if not raw:
        raise BPFError(_errno.EINVAL, op, detail="BTF data is empty")
    buf = ctypes.create_string_buffer(raw, len(raw))
    return _call(op, buf, len(raw), None)


@dataclasses.dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int


@dataclasses.dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str
    tag: str
    jited_prog_len: int
    xlated_prog_len: int
    insn_count: int
    load_time: int
    created_by_uid: int
    nr_map_ids: int


@dataclasses.dataclass(frozen=True)
class LinkInfo:
    id: int
    type: int
    prog_id: int


def _info(fd: int, size: int) -> bytes:
    # The kernel copies min(size, its struct size); asking for a prefix works on every kernel.
    buf = ctypes.create_string_buffer(size)
    length = ctypes.c_uint32(size)
    _call("bpf_obj_get_info_by_fd", _check_fd(fd, "bpf_obj_get_info_by_fd"), buf, ctypes.byref(length))
    return buf.raw


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def map_info(fd: int) -> MapInfo:
    raw = _info(fd, 40)
    type_, id_, key_size, value_size, max_entries, map_flags = struct.unpack_from("<6I", raw, 0)
    return MapInfo(id_, type_, _cstr(raw[24:40]), key_size, value_size, max_entries, map_flags)


def prog_info(fd: int) -> ProgInfo:
    raw = _info(fd, 80)
    type_, id_, tag, jited, xlated = struct.unpack_from("<II8sII", raw, 0)
    load_time, uid, nr_map_ids = struct.unpack_from("<QII", raw, 40)
    return ProgInfo(
        id_, type_, _cstr(raw[64:80]), tag.hex(), jited, xlated, xlated // 8, load_time, uid, nr_map_ids
    )


def link_info(fd: int) -> LinkInfo:
    type_, id_, prog_id = struct.unpack_from("<III", _info(fd, 16), 0)
    return LinkInfo(id_, type_, prog_id)


def _map_sizes(fd: int, op: str) -> tuple[int, int]:
    """(key bytes, value bytes) as the kernel will copy them for this map."""
    try:
        info = map_info(fd)
    except BPFError as exc:
        # Let the kernel say what this operation makes of the fd (EBADF, EINVAL):
        # every map command checks the fd before touching the NULL buffers.
        null_args = {"bpf_map_update_elem": (None, None, 0)}.get(op, (None, None))[: _PROTOTYPE_ARGC[op] - 1]
        ret = getattr(library(), op)(fd, *null_args)
        raise BPFError(-ret if ret < 0 else exc.errno, op, detail=f"fd {fd} is not a usable map") from None
    value = info.value_size
    if info.type in _PERCPU_MAPS:
        value = (value + 7) // 8 * 8 * num_possible_cpus()
    return info.key_size, value


def num_possible_cpus() -> int:
    """How many values a per-CPU map element holds."""
    return _call("libbpf_num_possible_cpus")


def _check_key(key, key_size: int, op: str) -> bytes:
    raw = _check_bytes(key, "key", op)
    if len(raw) != key_size:
        raise BPFError(_errno.EINVAL, op, detail=f"key is {len(raw)} bytes, the map's key_size is {key_size}")
    return raw


def map_update_elem(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    op = "bpf_map_update_elem"
    key_size, value_size = _map_sizes(_check_fd(fd, op), op)
    raw_key = _check_key(key, key_size, op)
    raw_value = _check_bytes(value, "value", op)
    if len(raw_value) != value_size:
        raise BPFError(
            _errno.EINVAL, op, detail=f"value is {len(raw_value)} bytes, the map expects {value_size}"
        )
    if not 0 <= flags < 1 << 64:
        raise BPFError(_errno.EINVAL, op, detail=f"flags {flags} do not fit in 64 bits")
    _call(op, fd, _buffer(raw_key), _buffer(raw_value), flags)


def map_lookup_elem(fd: int, key: bytes, value_size: int | None = None) -> bytes:
    """The value for key; value_size, if given, must match what the kernel will write."""
    op = "bpf_map_lookup_elem"
    key_size, expected = _map_sizes(_check_fd(fd, op), op)
    raw_key = _check_key(key, key_size, op)
    if value_size is not None and value_size != expected:
        raise BPFError(
            _errno.EINVAL, op, detail=f"value_size {value_size} != {expected} bytes the kernel writes"
        )
    out = ctypes.create_string_buffer(max(expected, 1))
    _call(op, fd, _buffer(raw_key), out)
    return out.raw[:expected]


def map_delete_elem(fd: int, key: bytes) -> None:
    op = "bpf_map_delete_elem"
    key_size, _ = _map_sizes(_check_fd(fd, op), op)
    _call(op, fd, _buffer(_check_key(key, key_size, op)))


def map_get_next_key(fd: int, key: bytes | None, key_size: int | None = None) -> bytes | None:
    """The key after key (the first key for None); None past the last key."""
    op = "bpf_map_get_next_key"
    real_size, _ = _map_sizes(_check_fd(fd, op), op)
    if key_size is not None and key_size != real_size:
        raise BPFError(_errno.EINVAL, op, detail=f"key_size {key_size} != the map's key_size {real_size}")
    current = None if key is None else _buffer(_check_key(key, real_size, op))
    out = ctypes.create_string_buffer(max(real_size, 1))
    try:
        _call(op, fd, current, out)
    except BPFError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return out.raw[:real_size]


# ---- programs


def _check_insns(insns, op: str) -> bytes:
    raw = _check_bytes(insns, "insns", op)
    if not raw or len(raw) % 8:
        raise BPFError(
            _errno.EINVAL, op, detail=f"insns must be a non-empty multiple of 8 bytes, got {len(raw)}"
        )
    return raw


def _raw_prog_load(
    prog_type, name, license, insns, expected_attach_type, kern_version, prog_flags, log_level, log_buf
) -> int:
    """One bpf_prog_load call; returns the fd or -errno."""
    op = "bpf_prog_load"
    opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts))
    if expected_attach_type is not None:
        opts.expected_attach_type = check_u32(int(expected_attach_type), "expected_attach_type", op)
    opts.kern_version = check_u32(kern_version, "kern_version", op)
    opts.prog_flags = check_u32(prog_flags, "prog_flags", op)
    if log_buf is not None:
        # libbpf 1.1 wants log_buf and log_size both set or both unset.
        opts.log_level = log_level
        opts.log_size = len(log_buf)
        opts.log_buf = ctypes.cast(log_buf, ctypes.c_void_p)
    buf = ctypes.create_string_buffer(insns, len(insns))
    lic = license.encode() if isinstance(license, str) else license
    if not isinstance(lic, bytes):
        raise BPFError(_errno.EINVAL, op, detail=f"license must be str, got {type(license).__name__}")
    return library().bpf_prog_load(
        check_u32(int(prog_type), "prog_type", op),
        _name(name, op),
        lic,
        buf,
        len(insns) // 8,
        ctypes.byref(opts),
    )


def prog_load(
    prog_type: int,
    name: str | None,
    license: str,
    insns: bytes,
    *,
    expected_attach_type: int | None = None,
    kern_version: int = 0,
    prog_flags: int = 0,
    log_level: int = 0,
    log_size: int = LOG_SIZE,
) -> int:
    """Load a program and return its fd. On rejection BPFError.errno is the
    verdict with logging off and BPFError.log the verifier's text (at
    log_level, at least 1)."""
    op = "bpf_prog_load"
    args = (prog_type, name, license, _check_insns(insns, op), expected_attach_type, kern_version, prog_flags)
    ret = _raw_prog_load(*args, 0, None)
    if ret >= 0:
        return ret
    buf = ctypes.create_string_buffer(check_u32(log_size, "log_size", op))
    again = _raw_prog_load(*args, max(log_level, 1), buf)
    if again >= 0:
        os.close(again)
    raise BPFError(-ret, op, log=buf.value.decode(errors="replace"))


def prog_load_with_log(
    prog_type: int,
    name: str | None,
    license: str,
    insns: bytes,
    *,
    expected_attach_type: int | None = None,
    kern_version: int = 0,
    prog_flags: int = 0,
    log_level: int = 1,
    log_size: int = LOG_SIZE,
) -> tuple[int, str]:
    """Load with the verifier log on; returns (fd, log). Rejections raise like prog_load."""
    op = "bpf_prog_load"
    args = (prog_type, name, license, _check_insns(insns, op), expected_attach_type, kern_version, prog_flags)
    buf = ctypes.create_string_buffer(check_u32(log_size, "log_size", op))
    ret = _raw_prog_load(*args, max(log_level, 1), buf)
    log = buf.value.decode(errors="replace")
    if ret >= 0:
        return ret, log
    verdict = _raw_prog_load(*args, 0, None)
    if verdict >= 0:
        os.close(verdict)
        verdict = ret
    raise BPFError(-verdict, op, log=log)


# ---- pinning, attaching, links


def obj_pin(fd: int, path: PathArg) -> None:
    op = "bpf_obj_pin"
    _call(op, _check_fd(fd, op), _check_path(path, op))


def obj_get(path: PathArg) -> int:
    op = "bpf_obj_get"
    return _call(op, _check_path(path, op))


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
    op = "bpf_prog_attach"
    _call(
        op, _check_fd(prog_fd, op), _check_fd(target_fd, op), int(attach_type), check_u32(flags, "flags", op)
    )


def prog_detach2(prog_fd: int, target_fd: int, attach_type: int) -> None:
    op = "bpf_prog_detach2"
    _call(op, _check_fd(prog_fd, op), _check_fd(target_fd, op), int(attach_type))


@dataclasses.dataclass(frozen=True)
class ProgQuery:
    attach_flags: int
    prog_ids: list[int]


def prog_query(target_fd: int, attach_type: int, query_flags: int = 0) -> ProgQuery:
    op = "bpf_prog_query"
    _check_fd(target_fd, op)
    capacity = 64
    while True:
        ids = (ctypes.c_uint32 * capacity)()
        count = ctypes.c_uint32(capacity)
        flags = ctypes.c_uint32(0)
        try:
            _call(
                op,
                target_fd,
                int(attach_type),
                check_u32(query_flags, "query_flags", op),
                ctypes.byref(flags),
                ids,
                ctypes.byref(count),
            )
        except BPFError as exc:
            # ENOSPC: more programs than slots; the kernel wrote the real count.
            if exc.errno == _errno.ENOSPC and count.value > capacity:
                capacity = count.value
                continue
            raise
        return ProgQuery(flags.value, list(ids[: count.value]))


def link_create(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> int:
    op = "bpf_link_create"
    opts = LinkCreateOpts(sz=ctypes.sizeof(LinkCreateOpts), flags=check_u32(flags, "flags", op))
    return _call(op, _check_fd(prog_fd, op), _check_fd(target_fd, op), int(attach_type), ctypes.byref(opts))


def link_detach(link_fd: int) -> None:
    op = "bpf_link_detach"
    _call(op, _check_fd(link_fd, op))


# ---- enumeration by id


def _next_id(op: str, start: int) -> int | None:
    nxt = ctypes.c_uint32()
    try:
        _call(op, check_u32(start, "start id", op), ctypes.byref(nxt))
    except BPFError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return nxt.value


def prog_get_next_id(start: int) -> int | None:
    return _next_id("bpf_prog_get_next_id", start)


def map_get_next_id(start: int) -> int | None:
    return _next_id("bpf_map_get_next_id", start)


def link_get_next_id(start: int) -> int | None:
    return _next_id("bpf_link_get_next_id", start)


def _all_ids(op: str) -> set[int]:
    ids: set[int] = set()
    current = _next_id(op, 0)
    while current is not None:
        ids.add(current)
        current = _next_id(op, current)
    return ids


def prog_ids() -> set[int]:
    return _all_ids("bpf_prog_get_next_id")


def map_ids() -> set[int]:
    return _all_ids("bpf_map_get_next_id")


def link_ids() -> set[int]:
    return _all_ids("bpf_link_get_next_id")


def prog_get_fd_by_id(id_: int) -> int:
    op = "bpf_prog_get_fd_by_id"
    return _call(op, check_u32(id_, "id", op))


def map_get_fd_by_id(id_: int) -> int:
    op = "bpf_map_get_fd_by_id"
    return _call(op, check_u32(id_, "id", op))


def link_get_fd_by_id(id_: int) -> int:
    op = "bpf_link_get_fd_by_id"
    return _call(op, check_u32(id_, "id", op))


def libbpf_version() -> tuple[int, int]:
    lib = library()
    return lib.libbpf_major_version(), lib.libbpf_minor_version()
