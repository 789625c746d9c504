"""Feature probes: does the running kernel have this map type, program type or helper?

libbpf's own probes first; where libbpf 1.1 does not know a type, a minimal
object of it is created; helpers are probed by loading a program (libbpf
1.1.2's helper probe gave a false positive).
"""

from __future__ import annotations

import errno as _errno
import os
import struct

from harness.bpf.libbpf import BPFError, _check_u32, _lib, map_create, prog_load, prog_load_with_log
from harness.bpf.uapi import BPF_F_MMAPABLE, AttachType, MapType, ProgType

# Types libbpf 1.1 does not know (it answers -EOPNOTSUPP): how to create a minimal one.
_MAP_PROBES = {
    MapType.ARENA: dict(key_size=0, value_size=0, max_entries=1, map_flags=BPF_F_MMAPABLE),
}
_PROG_PROBES: dict[int, AttachType] = {
    ProgType.NETFILTER: AttachType.NETFILTER,
}
# Loading these needs a BTF target, so a bare helper call cannot tell anything.
_NO_HELPER_PROBE = {ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS}


def _unknown_type_means_no(exc: BPFError) -> bool:
    # Kernels answer EINVAL for a type number they do not have; EOPNOTSUPP when compiled out.
    return exc.errno in (_errno.EINVAL, _errno.EOPNOTSUPP, 524)


def probe_map_type(map_type: int) -> bool:
    ret = _lib().libbpf_probe_bpf_map_type(int(map_type), None)
    if ret != -_errno.EOPNOTSUPP:
        if ret < 0:
            raise BPFError(-ret, "libbpf_probe_bpf_map_type")
        return ret == 1
    if map_type not in _MAP_PROBES:
        raise BPFError(_errno.EOPNOTSUPP, "probe_map_type", detail=f"no probe known for map type {map_type}")
    a = _MAP_PROBES[MapType(map_type)]
    try:
        fd = map_create(
            map_type, None, a["key_size"], a["value_size"], a["max_entries"], map_flags=a["map_flags"]
        )
    except BPFError as exc:
        if _unknown_type_means_no(exc):
            return False
        raise
    os.close(fd)
    return True


def _minimal_prog(ret: int) -> bytes:
    # r0 = ret; exit  (encoded here so this module does not depend on harness.insn)
    return struct.pack("<BBhi", 0xB7, 0, 0, ret) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def probe_prog_type(prog_type: int) -> bool:
    ret = _lib().libbpf_probe_bpf_prog_type(int(prog_type), None)
    if ret != -_errno.EOPNOTSUPP:
        if ret < 0:
            raise BPFError(-ret, "libbpf_probe_bpf_prog_type")
        return ret == 1
    if prog_type not in _PROG_PROBES:
        raise BPFError(
            _errno.EOPNOTSUPP, "probe_prog_type", detail=f"no probe known for program type {prog_type}"
        )
    try:
        fd = prog_load(prog_type, None, "GPL", _minimal_prog(1), expected_attach_type=_PROG_PROBES[prog_type])
    except BPFError as exc:
        if _unknown_type_means_no(exc):
            return False
        raise
    os.close(fd)
    return True


def probe_helper(prog_type: int, helper_id: int) -> bool:
    """Whether prog_type may call helper_id, by loading "call helper_id; exit".

    The load usually fails later on argument checks, which still means the
    helper exists; only the verifier's "unknown/invalid helper" messages mean no.
    """
    op = "probe_helper"
    if prog_type in _NO_HELPER_PROBE:
        raise BPFError(
            _errno.EOPNOTSUPP, op, detail=f"{ProgType(prog_type).name} programs need a BTF attach target"
        )
    insns = struct.pack("<BBhi", 0x85, 0, 0, _check_u32(helper_id, "helper_id", op)) + struct.pack(
        "<BBhi", 0x95, 0, 0, 0
    )
    try:
        fd, _ = prog_load_with_log(
            prog_type, None, "GPL", insns, expected_attach_type=_PROG_PROBES.get(prog_type)
        )
    except BPFError as exc:
        if exc.errno == _errno.EPERM:
            raise
        log = exc.log or ""
        if not log:
            return False  # refused before the verifier ran: the program type itself is missing
        return not any(
            m in log for m in ("invalid func ", "unknown func ", "cannot use helper", "cannot call helper")
        )
    os.close(fd)
    return True
