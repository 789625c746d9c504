"""libbpf's object API through ctypes: open a compiled ``.bpf.o``, load it, attach its programs.

One Python function per libbpf call, as in ``harness.bpf.libbpf``; what fails
raises ``ObjectError`` (a ``BPFError``) with the errno, the libbpf call and
everything libbpf printed meanwhile (its ``libbpf_set_print`` output: CO-RE
relocation messages, the verifier log between ``BEGIN PROG LOAD LOG`` and
``END``), so a report reads as a terminal would. The classes below wrap the
raw pointers for tests::

    with BPFObject.open_file("hello.bpf.o") as obj:
        obj.load()
        obj.program("hello").attach_kprobe("__x64_sys_execve")
        obj.map("config").update(struct.pack("<I", 0), b"hi".ljust(12, b"\\0"))
    # closing detaches: links, ring buffers and the object go together
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
import sys
import threading
from collections.abc import Iterator

from harness.bpf import libbpf as raw
from harness.bpf.libbpf import BPFError, PathArg

_vp = ctypes.c_void_p
_cp = ctypes.c_char_p
_int = ctypes.c_int

# int (*)(enum libbpf_print_level, const char *fmt, va_list): va_list is a pointer on x86-64
PRINT_FN = ctypes.CFUNCTYPE(_int, _int, _cp, _vp)
# int (*)(void *ctx, void *data, size_t size)
SAMPLE_FN = ctypes.CFUNCTYPE(_int, _vp, _vp, ctypes.c_size_t)

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
# What a report shows of libbpf's output: enough for the verifier's last states.
LOG_TAIL_LINES = 60
VA_LIST_SIZE = 24


class ObjectOpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts, libbpf 1.1 layout (later versions accept it via sz)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", _cp),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", _cp),
        ("_attach_prog_fd", ctypes.c_uint32),  # removed field, kept for the layout
        ("kconfig", _cp),
        ("btf_custom_path", _cp),
        ("kernel_log_buf", _vp),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


_PROTOTYPES: dict[str, tuple[object, list]] = {
    "libbpf_set_print": (_vp, [PRINT_FN]),
    "bpf_object__open_file": (_vp, [_cp, ctypes.POINTER(ObjectOpenOpts)]),
    "bpf_object__open_mem": (_vp, [_vp, ctypes.c_size_t, ctypes.POINTER(ObjectOpenOpts)]),
    "bpf_object__load": (_int, [_vp]),
    "bpf_object__close": (None, [_vp]),
    "bpf_object__name": (_cp, [_vp]),
    "bpf_object__find_program_by_name": (_vp, [_vp, _cp]),
    "bpf_object__find_map_by_name": (_vp, [_vp, _cp]),
    "bpf_object__next_program": (_vp, [_vp, _vp]),
    "bpf_object__next_map": (_vp, [_vp, _vp]),
    "bpf_program__name": (_cp, [_vp]),
    "bpf_program__section_name": (_cp, [_vp]),
    "bpf_program__fd": (_int, [_vp]),
    "bpf_program__type": (_int, [_vp]),
    "bpf_program__set_autoload": (_int, [_vp, ctypes.c_bool]),
    "bpf_program__attach": (_vp, [_vp]),
    "bpf_program__attach_kprobe": (_vp, [_vp, ctypes.c_bool, _cp]),
    "bpf_program__attach_tracepoint": (_vp, [_vp, _cp, _cp]),
    "bpf_program__attach_raw_tracepoint": (_vp, [_vp, _cp]),
    "bpf_program__attach_cgroup": (_vp, [_vp, _int]),
    "bpf_map__name": (_cp, [_vp]),
    "bpf_map__fd": (_int, [_vp]),
    "bpf_map__type": (_int, [_vp]),
    "bpf_map__key_size": (ctypes.c_uint32, [_vp]),
    "bpf_map__value_size": (ctypes.c_uint32, [_vp]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_vp]),
    "bpf_link__fd": (_int, [_vp]),
    "bpf_link__pin": (_int, [_vp, _cp]),
    "bpf_link__unpin": (_int, [_vp]),
    "bpf_link__destroy": (_int, [_vp]),
    "ring_buffer__new": (_vp, [_int, SAMPLE_FN, _vp, _vp]),
    "ring_buffer__poll": (_int, [_vp, _int]),
    "ring_buffer__consume": (_int, [_vp]),
    "ring_buffer__free": (None, [_vp]),
}


class ObjectError(BPFError):
    """A libbpf object call failed; ``log`` is what libbpf printed while it ran."""

    def __str__(self) -> str:
        text = f"{self.op}: {self.errno_name} ({raw.strerror(self.errno)})"
        if self.detail:
            text += f": {self.detail}"
        if self.log:
            lines = self.log.rstrip("\n").splitlines()
            shown = lines[-LOG_TAIL_LINES:]
            cut = f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else ""
            text += f"\nlibbpf log{cut}:\n  " + "\n  ".join(shown)
        return text


# ---- the library and its log


class _Log:
    """libbpf's print callback (one per process): inside our calls it collects what libbpf
    prints for the error; outside them (bcc, other users of the same libbpf) it writes to
    stderr, as libbpf's own default does."""

    def __init__(self):
        self._local = threading.local()
        self.callback = PRINT_FN(self._print)  # referenced here for as long as libbpf may call it
        libc = ctypes.CDLL(None)
        self._vsnprintf = libc.vsnprintf
        self._vsnprintf.argtypes = [_vp, ctypes.c_size_t, _cp, _vp]
        self._vsnprintf.restype = _int

    def _print(self, level: int, fmt: bytes, args: int) -> int:
        if level == LIBBPF_DEBUG:
            return 0
        # A va_list is used up by one vsnprintf: measure on a copy (x86-64 va_copy is a
        # copy of its 24-byte __va_list_tag), then format. The verifier log arrives as one
        # %s of up to 16 MiB whose end (the rejection) matters most.
        copy = ctypes.create_string_buffer(VA_LIST_SIZE)
        ctypes.memmove(copy, args, VA_LIST_SIZE)
        size = self._vsnprintf(None, 0, fmt, ctypes.addressof(copy)) + 1
        buf = ctypes.create_string_buffer(max(size, 1))
        self._vsnprintf(buf, len(buf), fmt, args)
        text = buf.value.decode(errors="replace")
        lines = getattr(self._local, "lines", None)
        if lines is None:
            sys.stderr.write(text)
        else:
            lines.append(text)
        return 0

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None


_state: tuple[ctypes.CDLL, _Log] | None = None


def _lib() -> ctypes.CDLL:
    return _open()[0]


def _open() -> tuple[ctypes.CDLL, _Log]:
    global _state
    if _state is None:
        lib = raw.library()
        try:
            for name, (restype, argtypes) in _PROTOTYPES.items():
                func = getattr(lib, name)
                func.restype = restype
                func.argtypes = argtypes
        except AttributeError as exc:
            raise raw.LibbpfMissing(f"libbpf lacks {exc.name or exc}: need libbpf >= 1.1") from exc
        log = _Log()
        lib.libbpf_set_print(log.callback)
        _state = (lib, log)
    return _state


def _call_ptr(op: str, *args) -> int:
    """A libbpf call returning a pointer: NULL means failure, with errno set (libbpf 1.0 mode)."""
    lib, log = _open()
    with log.capture() as printed:
        ctypes.set_errno(0)
        ptr = getattr(lib, op)(*args)
        err = ctypes.get_errno()
    if not ptr:
        raise ObjectError(err or _errno.EINVAL, op, log="".join(printed) or None)
    return ptr


def _call_int(op: str, *args) -> int:
    """A libbpf call returning an int: negative errno on failure."""
    lib, log = _open()
    with log.capture() as printed:
        ret = getattr(lib, op)(*args)
    if ret < 0:
        raise ObjectError(-ret, op, log="".join(printed) or None)
    return ret


def _text(ptr: bytes | None) -> str:
    return ptr.decode(errors="replace") if ptr else ""


# ---- one function per libbpf call


def object_open_file(path: PathArg, *, btf_custom_path: PathArg | None = None) -> int:
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts))
    if btf_custom_path is not None:
        opts.btf_custom_path = os.fsencode(btf_custom_path)
    return _call_ptr("bpf_object__open_file", os.fsencode(path), ctypes.byref(opts))


def object_open_mem(data: bytes, name: str = "object", *, btf_custom_path: PathArg | None = None) -> int:
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ObjectError(_errno.EINVAL, "bpf_object__open_mem", detail="data must be non-empty bytes")
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts), object_name=name.encode())
    if btf_custom_path is not None:
        opts.btf_custom_path = os.fsencode(btf_custom_path)
    # libbpf copies the ELF image while opening, so the buffer may go afterwards
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    return _call_ptr("bpf_object__open_mem", buf, len(data), ctypes.byref(opts))


def object_load(obj: int) -> None:
    _call_int("bpf_object__load", obj)


def object_close(obj: int) -> None:
    lib, log = _open()
    with log.capture():
        lib.bpf_object__close(obj)


def object_find_program_by_name(obj: int, name: str) -> int:
    return _call_ptr("bpf_object__find_program_by_name", obj, name.encode())


def object_find_map_by_name(obj: int, name: str) -> int:
    return _call_ptr("bpf_object__find_map_by_name", obj, name.encode())


def _each(op: str, obj: int) -> Iterator[int]:
    item = getattr(_lib(), op)(obj, None)
    while item:
        yield item
        item = getattr(_lib(), op)(obj, item)


def object_programs(obj: int) -> list[int]:
    return list(_each("bpf_object__next_program", obj))


def object_maps(obj: int) -> list[int]:
    return list(_each("bpf_object__next_map", obj))


def program_name(prog: int) -> str:
    return _text(_lib().bpf_program__name(prog))


def program_section_name(prog: int) -> str:
    return _text(_lib().bpf_program__section_name(prog))


def program_fd(prog: int) -> int:
    return _call_int("bpf_program__fd", prog)


def program_type(prog: int) -> int:
    return _lib().bpf_program__type(prog)


def program_set_autoload(prog: int, autoload: bool) -> None:
    _call_int("bpf_program__set_autoload", prog, autoload)


def program_attach(prog: int) -> int:
    return _call_ptr("bpf_program__attach", prog)


def program_attach_kprobe(prog: int, func_name: str, *, retprobe: bool = False) -> int:
    return _call_ptr("bpf_program__attach_kprobe", prog, retprobe, func_name.encode())


def program_attach_tracepoint(prog: int, category: str, name: str) -> int:
    return _call_ptr("bpf_program__attach_tracepoint", prog, category.encode(), name.encode())


def program_attach_raw_tracepoint(prog: int, name: str) -> int:
    return _call_ptr("bpf_program__attach_raw_tracepoint", prog, name.encode())


def program_attach_cgroup(prog: int, cgroup_fd: int) -> int:
    return _call_ptr("bpf_program__attach_cgroup", prog, cgroup_fd)


def map_name(map_: int) -> str:
    return _text(_lib().bpf_map__name(map_))


def map_fd(map_: int) -> int:
    return _call_int("bpf_map__fd", map_)


def link_fd(link: int) -> int:
    return _call_int("bpf_link__fd", link)


def link_pin(link: int, path: PathArg) -> None:
    _call_int("bpf_link__pin", link, os.fsencode(path))


def link_unpin(link: int) -> None:
    _call_int("bpf_link__unpin", link)


def link_destroy(link: int) -> None:
    _call_int("bpf_link__destroy", link)


# ---- objects for tests


class Link:
    """An attachment; ``destroy`` (or the object's close) detaches it."""

    def __init__(self, ptr: int, what: str):
        self._ptr: int | None = ptr
        self.what = what

    @property
    def fd(self) -> int:
        return link_fd(self._live())

    def _live(self) -> int:
        if self._ptr is None:
            raise ObjectError(_errno.EBADF, "bpf_link", detail=f"link {self.what} was destroyed")
        return self._ptr

    def pin(self, path: PathArg) -> None:
        link_pin(self._live(), path)

    def unpin(self) -> None:
        link_unpin(self._live())

    def destroy(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            link_destroy(ptr)

    def __repr__(self) -> str:
        return f"<Link {self.what}{' destroyed' if self._ptr is None else ''}>"


class Program:
    def __init__(self, obj: BPFObject, ptr: int):
        self._obj = obj
        self.ptr = ptr
        self.name = program_name(ptr)
        self.section = program_section_name(ptr)

    @property
    def fd(self) -> int:
        return program_fd(self.ptr)

    @property
    def type(self) -> int:
        return program_type(self.ptr)

    def info(self) -> raw.ProgInfo:
        return raw.prog_info(self.fd)

    def _keep(self, ptr: int, what: str) -> Link:
        link = Link(ptr, f"{self.name} {what}")
        self._obj.links.append(link)
        return link

    def attach(self) -> Link:
        """Attach where the program's SEC() says (kprobe/..., tp/..., ksyscall/..., ...)."""
        return self._keep(program_attach(self.ptr), f"at {self.section}")

    def attach_kprobe(self, func_name: str, *, retprobe: bool = False) -> Link:
        return self._keep(
            program_attach_kprobe(self.ptr, func_name, retprobe=retprobe),
            f"{'kretprobe' if retprobe else 'kprobe'} {func_name}",
        )

    def attach_tracepoint(self, category: str, name: str) -> Link:
        return self._keep(
            program_attach_tracepoint(self.ptr, category, name), f"tracepoint {category}:{name}"
        )

    def attach_raw_tracepoint(self, name: str) -> Link:
        return self._keep(program_attach_raw_tracepoint(self.ptr, name), f"raw_tracepoint {name}")

    def attach_cgroup(self, cgroup_fd: int) -> Link:
        return self._keep(program_attach_cgroup(self.ptr, cgroup_fd), f"cgroup fd {cgroup_fd}")

    def __repr__(self) -> str:
        return f"<Program {self.name} SEC({self.section!r})>"


class Map:
    def __init__(self, obj: BPFObject, ptr: int):
        self._obj = obj
        self.ptr = ptr
        self.name = map_name(ptr)

    @property
    def fd(self) -> int:
        return map_fd(self.ptr)

    def info(self) -> raw.MapInfo:
        return raw.map_info(self.fd)

    def lookup(self, key: bytes) -> bytes:
        return raw.map_lookup_elem(self.fd, key)

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        raw.map_update_elem(self.fd, key, value, flags)

    def delete(self, key: bytes) -> None:
        raw.map_delete_elem(self.fd, key)

    def ring_buffer(self) -> RingBuffer:
        """A reader of this BPF_MAP_TYPE_RINGBUF map, freed at the latest with the object."""
        ring = RingBuffer(self.fd)
        self._obj.rings.append(ring)
        return ring

    def __repr__(self) -> str:
        return f"<Map {self.name}>"


class RingBuffer:
    """A BPF_MAP_TYPE_RINGBUF map read through libbpf's ring_buffer__*; samples are bytes."""

    def __init__(self, map_fd: int):
        self.samples: list[bytes] = []
        self._cb = SAMPLE_FN(self._sample)  # referenced for as long as libbpf may call it
        self._ptr: int | None = _call_ptr("ring_buffer__new", map_fd, self._cb, None, None)

    def _sample(self, ctx, data, size) -> int:
        self.samples.append(ctypes.string_at(data, size))
        return 0

    def poll(self, timeout_ms: int = 100) -> list[bytes]:
        """Wait up to timeout_ms for samples; returns (and forgets) those received so far."""
        if self._ptr is None:
            raise ObjectError(_errno.EBADF, "ring_buffer__poll", detail="ring buffer was freed")
        _call_int("ring_buffer__poll", self._ptr, timeout_ms)
        got, self.samples = self.samples, []
        return got

    def free(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            _lib().ring_buffer__free(ptr)

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.free()


class BPFObject:
    """An opened ``.bpf.o``: ``load()``, then ``program(name)``, ``map(name)``; ``close()`` frees all.

    Closing destroys the links made through it first, so nothing it attached outlives it.
    """

    def __init__(self, ptr: int, name: str):
        self._ptr: int | None = ptr
        self.name = name
        self.links: list[Link] = []
        self.rings: list[RingBuffer] = []

    @classmethod
    def open_file(cls, path: PathArg, *, btf_custom_path: PathArg | None = None) -> BPFObject:
        return cls(
            object_open_file(path, btf_custom_path=btf_custom_path), os.path.basename(os.fsdecode(path))
        )

    @classmethod
    def open_mem(cls, data: bytes, name: str = "object", **kw) -> BPFObject:
        return cls(object_open_mem(data, name, **kw), name)

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise ObjectError(_errno.EBADF, "bpf_object", detail=f"{self.name} is closed")
        return self._ptr

    def load(self) -> BPFObject:
        object_load(self.ptr)
        return self

    def program(self, name: str) -> Program:
        try:
            return Program(self, object_find_program_by_name(self.ptr, name))
        except ObjectError as exc:
            has = [p.name for p in self.programs]
            raise ObjectError(
                exc.errno, exc.op, exc.log, f"no program {name!r} in {self.name}; it has {has}"
            ) from None

    def map(self, name: str) -> Map:
        try:
            return Map(self, object_find_map_by_name(self.ptr, name))
        except ObjectError as exc:
            has = [m.name for m in self.maps]
            raise ObjectError(
                exc.errno, exc.op, exc.log, f"no map {name!r} in {self.name}; it has {has}"
            ) from None

    @property
    def programs(self) -> list[Program]:
        return [Program(self, p) for p in object_programs(self.ptr)]

    @property
    def maps(self) -> list[Map]:
        return [Map(self, m) for m in object_maps(self.ptr)]

    def close(self) -> None:
        if self._ptr is None:
            return
        for ring in self.rings:
            ring.free()  # its mmap of the map would keep the map alive
        for link in reversed(self.links):
            link.destroy()
        ptr, self._ptr = self._ptr, None
        object_close(ptr)

    def __enter__(self) -> BPFObject:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BPFObject {self.name}{' closed' if self._ptr is None else ''}>"


def unpack_cstr(raw_bytes: bytes) -> str:
    """A NUL-terminated C string field of an event as str."""
    return raw_bytes.split(b"\0", 1)[0].decode(errors="replace")
