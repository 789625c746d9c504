"""Feature probes: does the running kernel have this map type, program type or helper?

Every probe answers one of three things, never raises for what the kernel says:

    probe_map_type(MapType.ARENA)   -> Probe(present=True)                 the kernel made one
                                    -> Probe(present=False, reason=...)    EINVAL/E2BIG/EOPNOTSUPP: it has none
                                    -> Probe(present=None, reason=...)     unknown: EPERM, and which capability
                                                                           this process lacks; any other errno, named

A probe refused with EPERM says nothing about the feature: a container without
CAP_SYS_ADMIN, a user with only CAP_BPF, or a host kernel that refuses the type
even to root (6.18 here refuses ARENA maps with EPERM) all look alike to bpf().
``bool(probe)`` raises, so no caller can read "unknown" as "absent" by accident.

libbpf's own probes first; where libbpf 1.1 does not know a type, a minimal
object of it is created; helpers are probed by loading a program (libbpf
1.1.2's helper probe gave a false positive).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import os
import struct

from harness.bpf.libbpf import (
    BPFError,
    check_u32,
    errno_name,
    library,
    map_create,
    prog_load,
    prog_load_with_log,
)
from harness.bpf.uapi import BPF_F_MMAPABLE, AttachType, MapType, ProgType

__all__ = ["Probe", "probe_map_type", "probe_prog_type", "probe_helper"]

ENOTSUPP = 524  # the kernel's internal "not supported", which leaks out of bpf() for some types

# Types libbpf 1.1 does not know (it answers -EOPNOTSUPP): how to create a minimal one.
_MAP_PROBES = {
    MapType.ARENA: dict(key_size=0, value_size=0, max_entries=1, map_flags=BPF_F_MMAPABLE),
}
_PROG_PROBES: dict[int, AttachType] = {
    ProgType.NETFILTER: AttachType.NETFILTER,
}
# Loading these needs a BTF target, so a bare helper call cannot tell anything.
_NO_HELPER_PROBE = {ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS}

# Kernels answer EINVAL for a type number they do not have, E2BIG for attributes past
# what they know, EOPNOTSUPP/ENOTSUPP when the type is compiled out.
_ABSENT_ERRNOS = (_errno.EINVAL, _errno.E2BIG, _errno.EOPNOTSUPP, ENOTSUPP)
_REFUSED_ERRNOS = (_errno.EPERM, _errno.EACCES)

# What bpf() checks, by capability number (linux/capability.h).
_CAPABILITIES = {"CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21}


@dataclasses.dataclass(frozen=True)
class Probe:
    """A probe's answer: present is True, False, or None (unknown); reason says why when not True."""

    what: str
    present: bool | None
    reason: str = ""

    def __bool__(self) -> bool:
        raise TypeError(f"a probe of {self.what} is present, absent or unknown: read .present, not bool()")


def missing_capabilities(status: str = "/proc/self/status") -> list[str]:
    """The capabilities bpf() checks that this process does not have in its effective set."""
    try:
        with open(status, encoding="ascii") as f:
            cap_eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return []
    return [name for name, bit in _CAPABILITIES.items() if not cap_eff >> bit & 1]


def refused_reason(what: str, err: int) -> str:
    """Why a probe of what refused with err (EPERM/EACCES) cannot tell whether the kernel has it."""
    missing = missing_capabilities()
    head = f"cannot tell whether the kernel has {what}: bpf() refused the probe with {errno_name(err)}"
    if missing:
        return f"{head} and this process lacks {', '.join(missing)} (run as root, or grant them)"
    return (
        f"{head} although this process has {', '.join(_CAPABILITIES)}: "
        "the host refuses it (a security module, lockdown, or a kernel that restricts this feature)"
    )


def answer(what: str, err: int) -> Probe:
    """The probe's answer when bpf() failed with err."""
    if err in _ABSENT_ERRNOS:
        return Probe(what, False, f"bpf() answered {errno_name(err)}")
    if err in _REFUSED_ERRNOS:
        return Probe(what, None, refused_reason(what, err))
    return Probe(
        what,
        None,
        f"cannot tell whether the kernel has {what}: bpf() answered {errno_name(err)} "
        f"({os.strerror(err)}), which says neither present nor absent",
    )


def _libbpf_probe(what: str, func: str, type_: int) -> Probe | None:
    """libbpf's probe for type_, with the errno behind a "no"; None when libbpf has no probe for it."""
    ctypes.set_errno(0)
    ret = getattr(library(), func)(int(type_), None)
    err = ctypes.get_errno()
    if ret == -_errno.EOPNOTSUPP:
        return None
    if ret == 1:
        return Probe(what, True)
    if ret < 0:
        return answer(what, -ret)
    # libbpf answers 0 for every failure; the errno of its last bpf() call says which
    return answer(what, err) if err else Probe(what, False, "libbpf's probe says no")


def probe_map_type(map_type: int) -> Probe:
    what = f"{_name(MapType, map_type)} maps"
    found = _libbpf_probe(what, "libbpf_probe_bpf_map_type", map_type)
    if found is not None:
        return found
    if map_type not in _MAP_PROBES:
        return Probe(what, None, f"no probe is known for {what} (libbpf answers EOPNOTSUPP)")
    a = _MAP_PROBES[MapType(map_type)]
    try:
        fd = map_create(
            map_type, None, a["key_size"], a["value_size"], a["max_entries"], map_flags=a["map_flags"]
        )
    except BPFError as exc:
        return answer(what, exc.errno)
    os.close(fd)
    return Probe(what, True)


def _minimal_prog(ret: int) -> bytes:
    # r0 = ret; exit  (encoded here so this module does not depend on harness.insn)
    return struct.pack("<BBhi", 0xB7, 0, 0, ret) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def probe_prog_type(prog_type: int) -> Probe:
    what = f"{_name(ProgType, prog_type)} programs"
    found = _libbpf_probe(what, "libbpf_probe_bpf_prog_type", prog_type)
    if found is not None:
        return found
    if prog_type not in _PROG_PROBES:
        return Probe(what, None, f"no probe is known for {what} (libbpf answers EOPNOTSUPP)")
    try:
        fd = prog_load(prog_type, None, "GPL", _minimal_prog(1), expected_attach_type=_PROG_PROBES[prog_type])
    except BPFError as exc:
        return answer(what, exc.errno)
    os.close(fd)
    return Probe(what, True)


def probe_helper(prog_type: int, helper_id: int) -> Probe:
    """Whether prog_type may call helper_id, by loading "call helper_id; exit".

    The load usually fails later on argument checks, which still means the
    helper exists; only the verifier's "unknown/invalid helper" messages mean no.
    """
    what = f"calls to helper #{helper_id} from {_name(ProgType, prog_type)} programs"
    if prog_type in _NO_HELPER_PROBE:
        return Probe(what, None, f"{ProgType(prog_type).name} programs need a BTF attach target to be probed")
    insns = struct.pack("<BBhi", 0x85, 0, 0, check_u32(helper_id, "helper_id", "probe_helper"))
    insns += struct.pack("<BBhi", 0x95, 0, 0, 0)
    try:
        fd, _ = prog_load_with_log(
            prog_type, None, "GPL", insns, expected_attach_type=_PROG_PROBES.get(prog_type)
        )
    except BPFError as exc:
        log = exc.log or ""
        if not log:
            # refused before the verifier ran: privileges, or the program type itself is missing
            return answer(what, exc.errno)
        if any(
            m in log for m in ("invalid func ", "unknown func ", "cannot use helper", "cannot call helper")
        ):
            return Probe(what, False, "the verifier does not know the helper for this program type")
        return Probe(what, True)
    os.close(fd)
    return Probe(what, True)


def _name(enum_cls, value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return f"type {int(value)}"
