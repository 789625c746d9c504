"""harness.bpf.compile: clang on the host, a cache keyed by content, and what a guest finds in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.bpf import compile as C
from harness.bpf.compile import CompileError, ObjectCache

GOOD = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("socket") int ret0(void *ctx) { return VALUE; }
"""
BROKEN = GOOD.replace("return VALUE;", "return VALUE +;")


@pytest.fixture
def cache(tmp_path):
    cache = ObjectCache(tmp_path / "objects")
    try:
        cache.tools  # noqa: B018
        cache.vmlinux_h  # noqa: B018
    except CompileError as exc:
        pytest.skip(f"cannot compile BPF C here: {exc}")
    return cache


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "value.h").write_text("#define VALUE 0\n")
    path = d / "prog.bpf.c"
    path.write_text('#include "value.h"\n' + GOOD)
    return path


def test_compile_gives_a_bpf_elf_object(cache, src):
    obj = cache.compile(src)
    data = obj.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert int.from_bytes(data[18:20], "little") == 247  # e_machine EM_BPF
    assert obj.parent == cache.root / "objects"


def test_second_compile_of_the_same_content_runs_no_clang(cache, src, monkeypatch):
    first = cache.compile(src)
    stamp = first.stat().st_mtime_ns
    monkeypatch.setenv("PATH", "")  # a clang run now would not find the tools
    monkeypatch.setattr(C, "INCLUDE_DIRS", ())
    assert cache.compile(src) == first
    assert first.stat().st_mtime_ns == stamp


def test_changed_source_or_header_beside_it_is_a_new_object(cache, src):
    first = cache.compile(src)
    (src.parent / "value.h").write_text("#define VALUE 1\n")
    second = cache.compile(src)
    src.write_text(src.read_text() + "\n// a comment\n")
    third = cache.compile(src)
    assert len({first, second, third}) == 3


def test_compile_error_shows_clangs_diagnostic_and_is_cached(cache, src):
    src.write_text('#include "value.h"\n' + BROKEN)
    with pytest.raises(CompileError) as caught:
        cache.compile(src)
    text = str(caught.value)
    assert "prog.bpf.c:5:" in text and "error: expected expression" in text
    assert len(list((cache.root / "objects").glob("*.err"))) == 1
    with pytest.raises(CompileError) as again:
        cache.lookup(src)  # what a guest sees: the same diagnostics, without clang
    assert "error: expected expression" in str(again.value)


def test_lookup_finds_what_the_host_compiled(cache, src):
    compiled = cache.compile(src)
    assert cache.lookup(src) == compiled


def test_lookup_of_a_source_the_host_never_compiled_says_so(cache, src):
    with pytest.raises(CompileError, match="not compiled by the host"):
        cache.lookup(src)


def test_lookup_follows_the_sources_current_content(cache, src):
    cache.compile(src)
    src.write_text(src.read_text() + "\n// edited after the host compiled it\n")
    with pytest.raises(CompileError, match="not compiled by the host"):
        cache.lookup(src)


def test_object_files_are_passed_through(cache, tmp_path):
    given = tmp_path / "prebuilt.bpf.o"
    assert cache.compile(given) == given.resolve()
    assert cache.lookup(given) == given.resolve()


def test_missing_clang_says_what_to_install(tmp_path, src, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompileError, match="apt-get install clang"):
        ObjectCache(tmp_path / "objects").compile(src)


def test_unreadable_btf_names_the_option(tmp_path, src):
    with pytest.raises(CompileError, match="--bpf-vmlinux"):
        ObjectCache(tmp_path / "objects", btf=tmp_path / "absent").vmlinux_h  # noqa: B018


def test_find_sources_skips_hidden_directories(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.bpf.c").write_text("")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "b.bpf.c").write_text("")
    (tmp_path / "c" / "not_bpf.c").write_text("")
    assert C.find_sources([tmp_path]) == [(tmp_path / "c" / "a.bpf.c").resolve()]


def cached_kernel_images() -> list[Path]:
    from harness.kernels.cache import default_root  # noqa: PLC0415

    return sorted(default_root().glob("*/boot/vmlinuz-*"))


def test_vmlinux_h_from_a_cached_kernels_bzimage(tmp_path):
    images = cached_kernel_images()
    image = images[-1] if images else None  # the newest series: zstd since 6.12
    if image is None:
        pytest.skip("no kernel in the cache (ci/setup.sh fetches 6.1 and 6.12)")
    header = ObjectCache(tmp_path, btf=image).vmlinux_h
    text = header.read_text()
    assert "struct task_struct {" in text
    assert header.parent.parent == tmp_path / "vmlinux"


def test_elf_from_bzimage_refuses_what_is_not_a_bzimage():
    with pytest.raises(CompileError, match="not a bzImage"):
        C.elf_from_bzimage(b"\0" * 4096)


def test_elf_from_bzimage_of_the_oldest_and_newest_cached_kernel():
    """xz (Debian's 6.1) and zstd (6.12 and later) payloads both unpack to the vmlinux ELF."""
    images = sorted(cached_kernel_images())
    if not images:
        pytest.skip("no kernel in the cache (ci/setup.sh fetches 6.1 and 6.12)")
    for image in {images[0], images[-1]}:  # the oldest and the newest series: xz and zstd here
        elf = C.elf_from_bzimage(image.read_bytes())
        assert elf[:4] == b"\x7fELF", image


def test_default_root_follows_the_cache_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(C.CACHE_ENV, str(tmp_path))
    assert C.default_root() == tmp_path
    monkeypatch.delenv(C.CACHE_ENV)
    assert C.default_root().name == "bpf-objects"
    assert os.fspath(C.default_root()) != os.fspath(tmp_path / "bpf-objects")
