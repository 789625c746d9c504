"""Compile ``.bpf.c`` sources on the host into a content-addressed cache that guests read.

    objects = ObjectCache()              # $HARNESS_BPF_OBJECTS, or the user cache
    path = objects.compile("cases/c/hello.bpf.c")   # clang -target bpf -g -O2, once per content
    path = objects.lookup("cases/c/hello.bpf.c")    # in a guest: what the host compiled, no clang

Why the host: clang runs natively there, in a fraction of a second; in a TCG
guest the same work takes ten times as long (bcc's compile of one kprobe
program took 10.6 s in a 6.1 guest). The guest sees the host's root read-only,
so it reads the objects the host put in the cache.

The object's key is a hash of everything that decides its bytes: the source
and the ``.h`` files beside it, clang's version, libbpf's headers, the
``vmlinux.h`` and the flags. The guest cannot recompute that key (its
``/sys/kernel/btf/vmlinux`` is another kernel's), so each compile also writes
an index entry keyed by the source alone: ``index/<source key>.json`` names
the object or holds clang's diagnostics. A compile error is cached as well and
raised again as ``CompileError`` wherever that source is asked for.

``vmlinux.h`` comes from one kernel's BTF (``bpftool btf dump ... format c``):
by default the host's ``/sys/kernel/btf/vmlinux``, or a BTF file, a vmlinux
ELF or a bzImage given instead (``--bpf-vmlinux``). One header serves every
kernel: with CO-RE, libbpf relocates each field access against the BTF of the
kernel that loads the object, so the header only has to name the types and
fields a program uses. A recent kernel's header names the most; a field that
a target kernel lacks then fails there with libbpf's relocation message, which
is the answer a user wants from the run.

Layout (root = $HARNESS_BPF_OBJECTS, or the user cache dir + /bpf-objects; beside the
kernel cache, not in it: $HARNESS_CACHE_DIR is the kernels' own directory):

    <root>/vmlinux/<BTF sha256>/vmlinux.h
    <root>/objects/<key>.bpf.o      or  <key>.err (clang's diagnostics)
    <root>/index/<source key>.json  {"object": "objects/<key>.bpf.o"} or {"error": ...}
    <root>/.locks/<key>.lock
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

CACHE_ENV = "HARNESS_BPF_OBJECTS"
APP = "bpf-vm-harness"
HOST_BTF = Path("/sys/kernel/btf/vmlinux")
# -g: BTF for maps and CO-RE relocations; -O2: the verifier cannot follow -O0 code.
CFLAGS = ("-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-Wall")
LIBBPF_HEADER = "bpf/bpf_helpers.h"
INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))
# A BPF source compiles in under a second here; anything this long is stuck.
COMPILE_TIMEOUT = 300
SCHEMA = 1


class CompileError(Exception):
    """A source did not compile (clang's diagnostics in ``diagnostics``), or no tool to compile it."""

    def __init__(self, source: str, message: str, diagnostics: str = ""):
        super().__init__(source, message, diagnostics)
        self.source = source
        self.message = message
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}"
        if self.diagnostics:
            text += "\n" + self.diagnostics.rstrip()
        return text


def default_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs  # noqa: PLC0415 - the guest is told the root (--bpf-objects)

    base = Path(platformdirs.user_cache_dir(APP))
    return base / "bpf-objects"


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def source_key(source: Path) -> str:
    """What the guest can compute: the source and the headers beside it, by content."""
    source = Path(source)
    try:
        parts = [source.name.encode(), source.read_bytes()]
        for header in sorted(source.parent.glob("*.h")):
            parts += [header.name.encode(), header.read_bytes()]
    except OSError as exc:
        raise CompileError(str(source), f"cannot read the source: {exc.strerror}") from None
    return _sha256(*parts)


def _tool(name: str, package: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise CompileError(
            name, f"{name} is not installed; BPF programs in C need it: apt-get install {package}"
        )
    return found


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- vmlinux.h from BTF


def _unzstd(data: bytes) -> bytes:
    # Python 3.11 has no zstd; Debian's 6.12 and later kernels use it (package zstd)
    done = subprocess.run([_tool("zstd", "zstd"), "-dcq"], input=data, capture_output=True, check=False)
    if done.returncode != 0:
        raise CompileError(
            "bzImage", "zstd could not unpack the kernel", done.stderr.decode(errors="replace")
        )
    return done.stdout


# compressed payload magic -> how to unpack it (the formats Debian's kernels use)
_UNPACK = {
    b"\xfd7zXZ\x00": lambda d: lzma.LZMADecompressor().decompress(d),
    b"\x1f\x8b\x08": lambda d: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(d),
    b"\x28\xb5\x2f\xfd": _unzstd,
}


def elf_from_bzimage(image: bytes) -> bytes:
    """The vmlinux ELF inside a bzImage, found through the boot header's payload fields.

    x86 boot protocol 2.08+: the compressed kernel is payload_length bytes at
    payload_offset (0x248, 0x24c) past the setup sectors; the build appends the
    uncompressed size (4 bytes) inside that length, which zstd refuses.
    """
    if image[0x202:0x206] != b"HdrS" or len(image) < 0x250:
        raise CompileError("bzImage", "not a bzImage (no HdrS boot header)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start : start + length - 4]
    for magic, unpack in _UNPACK.items():
        if payload.startswith(magic):
            try:
                elf = unpack(payload)
            except (lzma.LZMAError, zlib.error) as exc:
                raise CompileError("bzImage", f"the kernel payload does not unpack: {exc}") from None
            if elf.startswith(b"\x7fELF"):
                return elf
    raise CompileError(
        "bzImage", f"no xz, gzip or zstd payload holding an ELF vmlinux (payload starts {payload[:4].hex()})"
    )


def btf_input(path: Path, work: Path) -> Path:
    """A file bpftool can dump: raw BTF or an ELF with .BTF as is, a bzImage unpacked to its ELF."""
    with open(path, "rb") as f:
        head = f.read(0x210)
    if head[0x202:0x206] == b"HdrS":
        elf = work / "vmlinux"
        elf.write_bytes(elf_from_bzimage(path.read_bytes()))
        return elf
    return path


@dataclass(frozen=True)
class Toolchain:
    clang: str
    clang_version: str
    libbpf_include: Path  # the directory holding bpf/bpf_helpers.h
    headers_key: str


def toolchain() -> Toolchain:
    clang = _tool("clang", "clang")
    version = subprocess.run([clang, "--version"], capture_output=True, text=True, check=True).stdout
    for inc in INCLUDE_DIRS:
        if (inc / LIBBPF_HEADER).is_file():
            headers = sorted((inc / "bpf").glob("*.h"))
            key = _sha256(*(p.name.encode() + p.read_bytes() for p in headers))
            return Toolchain(clang, version.splitlines()[0], inc, key)
    raise CompileError(
        LIBBPF_HEADER, f"libbpf's headers are not installed (no {LIBBPF_HEADER}): apt-get install libbpf-dev"
    )


class ObjectCache:
    """Compiled BPF objects by content; safe for several pytest processes at once."""

    def __init__(self, root: Path | str | None = None, btf: Path | str | None = None):
        self.root = Path(root) if root else default_root()
        self.btf = Path(btf) if btf else HOST_BTF

    def _lock(self, name: str):
        import filelock  # noqa: PLC0415 - only the host compiles, so only the host locks

        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.root / ".locks" / f"{name}.lock"))

    @cached_property
    def tools(self) -> Toolchain:
        return toolchain()

    @cached_property
    def vmlinux_h(self) -> Path:
        """The cached vmlinux.h of self.btf, generated once per BTF content."""
        try:
            digest = hashlib.sha256(self.btf.read_bytes()).hexdigest()
        except OSError as exc:
            raise CompileError(
                str(self.btf),
                f"cannot read kernel BTF for vmlinux.h ({exc.strerror}); this kernel may lack "
                "CONFIG_DEBUG_INFO_BTF: pass --bpf-vmlinux with a BTF file, vmlinux or bzImage",
            ) from None
        header = self.root / "vmlinux" / digest / "vmlinux.h"
        if header.is_file():
            return header
        bpftool = _tool("bpftool", "bpftool")
        with self._lock(f"vmlinux-{digest}"), tempfile.TemporaryDirectory(prefix="bpf-btf-") as work:
            if not header.is_file():
                dumped = subprocess.run(
                    [bpftool, "btf", "dump", "file", str(btf_input(self.btf, Path(work))), "format", "c"],
                    capture_output=True,
                    timeout=COMPILE_TIMEOUT,
                    check=False,
                )
                if dumped.returncode != 0:
                    raise CompileError(
                        str(self.btf),
                        "bpftool could not dump its BTF as C",
                        dumped.stderr.decode(errors="replace"),
                    )
                atomic_write(header, dumped.stdout)
        return header

    def key(self, source: Path) -> str:
        t = self.tools
        flags = " ".join(CFLAGS).encode()
        vmlinux = self.vmlinux_h.parent.name.encode()
        return _sha256(
            str(SCHEMA).encode(),
            source_key(source).encode(),
            t.clang_version.encode(),
            t.headers_key.encode(),
            vmlinux,
            flags,
        )

    def compile(self, source: Path | str) -> Path:
        """The object for source, compiled now unless cached; raises CompileError with clang's output."""
        source = Path(source).resolve()
        if source.suffix == ".o":
            return source
        key = self.key(source)
        obj = self.root / "objects" / f"{key}.bpf.o"
        err = obj.with_suffix("").with_suffix(".err")
        if not obj.is_file() and not err.is_file():
            with self._lock(key):
                if not obj.is_file() and not err.is_file():
                    self._compile(source, obj, err)
        self._index(source, obj, err)
        return self._result(source, obj, err)

    def _compile(self, source: Path, obj: Path, err: Path) -> None:
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.parent / f".tmp-{obj.name}-{os.getpid()}"
        cmd = [
            self.tools.clang,
            *CFLAGS,
            "-I",
            str(self.vmlinux_h.parent),
            "-I",
            str(source.parent),
            "-c",
            str(source),
            "-o",
            str(tmp),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise CompileError(str(source), f"clang did not finish in {COMPILE_TIMEOUT} s") from None
        if done.returncode == 0:
            os.replace(tmp, obj)
        else:
            tmp.unlink(missing_ok=True)
            atomic_write(err, f"clang exited with {done.returncode}\n{done.stderr}".encode())

    def _index(self, source: Path, obj: Path, err: Path) -> None:
        entry = {"schema": SCHEMA, "source": str(source)}
        if obj.is_file():
            entry["object"] = str(obj.relative_to(self.root))
        else:
            entry["error"] = err.read_text(errors="replace")
        path = self.root / "index" / f"{source_key(source)}.json"
        try:
            if json.loads(path.read_text()) == entry:
                return  # unchanged: keep a read-mostly cache free of writes
        except (OSError, ValueError):
            pass
        atomic_write(path, json.dumps(entry, indent=1).encode())

    def _result(self, source: Path, obj: Path, err: Path) -> Path:
        if obj.is_file():
            return obj
        raise CompileError(str(source), "clang failed", err.read_text(errors="replace"))

    def lookup(self, source: Path | str) -> Path:
        """In a guest: the object the host compiled for this source's current content. Runs no clang."""
        source = Path(source).resolve()
        if source.suffix == ".o":
            return source
        path = self.root / "index" / f"{source_key(source)}.json"
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            raise CompileError(
                str(source),
                f"not compiled by the host (no {path}): the host compiles the .bpf.c files under the "
                "directories of the test files it collects, before the VMs boot; put the source there",
            ) from None
        if "error" in entry:
            raise CompileError(str(source), "clang failed (on the host)", entry["error"])
        return self.root / entry["object"]


def find_sources(directories) -> list[Path]:
    """Every ``*.bpf.c`` under these directories, skipping hidden ones (.venv, .git)."""
    found: set[Path] = set()
    for top in directories:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            found.update(Path(dirpath, f).resolve() for f in filenames if f.endswith(".bpf.c"))
    return sorted(found)
