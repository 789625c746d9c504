"""Build the smallest raw BTF blob that maps with typed keys/values (local storage maps) need.

    fd = libbpf.btf_load(btf.int_only())
    libbpf.map_create(MapType.CGRP_STORAGE, "st", 4, 4, 0, map_flags=BPF_F_NO_PREALLOC,
                      btf_fd=fd, btf_key_type_id=btf.INT_TYPE_ID, btf_value_type_id=btf.INT_TYPE_ID)

Format: include/uapi/linux/btf.h (header, type section, string section).
"""

from __future__ import annotations

import struct

MAGIC = 0xEB9F
KIND_INT = 1
INT_SIGNED = 1 << 0
# Type id 0 is "void"; the first type in the blob gets id 1.
INT_TYPE_ID = 1


def _int_type(name_off: int, size: int, signed: bool) -> bytes:
    info = KIND_INT << 24
    encoding = (INT_SIGNED if signed else 0) << 24 | size * 8  # bit offset 0, bits = size * 8
    return struct.pack("<IIII", name_off, info, size, encoding)


def blob(types: bytes, strings: bytes) -> bytes:
    """A BTF blob from the encoded type section and the string section (which starts with NUL)."""
    header_len = 24
    header = struct.pack("<HBBIIIII", MAGIC, 1, 0, header_len, 0, len(types), len(types), len(strings))
    return header + types + strings


def int_only() -> bytes:
    """BTF with one type: [1] int, 4 bytes, signed."""
    return blob(_int_type(1, 4, signed=True), b"\0int\0")
