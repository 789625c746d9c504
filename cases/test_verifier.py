"""Verifier verdicts: each rejected program with its errno and log text, beside an accepted twin.

The errno is the verdict with logging off (a full log buffer would turn it
into ENOSPC); the text comes from a reload with a large log buffer.

Not here on purpose: a loop that only ends by counter overflow (E2BIG "BPF
program is too large") makes the verifier walk 1M instructions, about 2.5 s
per load on the host and far longer under TCG; infinite-loop covers the idea.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from harness import insn as I
from harness import libbpf as L
from harness.libbpf import BPFError, ProgType

R0_0 = I.mov64_imm(I.R0, 0)
EXIT = I.exit_()
COUNTED_LOOP = I.program(
    I.mov64_imm(I.R1, 10), I.alu64_imm(I.SUB, I.R1, 1), I.jmp_imm(I.JNE, I.R1, 0, -2), R0_0, EXIT
)


def _read_kernel(license: str) -> tuple[str, bytes]:
    """bpf_probe_read_kernel(fp - 8, 8, NULL): a GPL-only helper with simple arguments."""
    return license, I.program(
        I.mov64_reg(I.R1, I.R10),
        I.alu64_imm(I.ADD, I.R1, -8),
        I.mov64_imm(I.R2, 8),
        I.mov64_imm(I.R3, 0),
        I.call(I.Helper.probe_read_kernel),
        R0_0,
        EXIT,
    )


@dataclasses.dataclass(frozen=True)
class Pair:
    rejected: bytes
    errno_name: str
    says: tuple[str, ...]  # any of these in the log
    accepted: bytes  # the same idea without the flaw
    prog_type: ProgType = ProgType.SOCKET_FILTER
    license: str = "GPL"
    accepted_license: str = "GPL"


PAIRS = {
    "r0-never-set": Pair(EXIT, "EACCES", ("R0 !read_ok",), I.program(R0_0, EXIT)),
    "read-unset-register": Pair(
        I.program(I.mov64_reg(I.R0, I.R5), EXIT),
        "EACCES",
        ("R5 !read_ok",),
        I.program(I.mov64_imm(I.R5, 0), I.mov64_reg(I.R0, I.R5), EXIT),
    ),
    "stack-write-out-of-bounds": Pair(
        I.program(I.st_mem(I.DW, I.R10, -520, 0), R0_0, EXIT),
        "EACCES",
        ("invalid write to stack", "invalid stack"),
        I.program(I.st_mem(I.DW, I.R10, -512, 0), R0_0, EXIT),
    ),
    "frame-pointer-write": Pair(
        I.program(I.mov64_imm(I.R10, 0), R0_0, EXIT),
        "EACCES",
        ("frame pointer is read only",),
        I.program(I.mov64_imm(I.R9, 0), R0_0, EXIT),
    ),
    "unreachable-insn": Pair(
        I.program(R0_0, EXIT, EXIT),
        "EINVAL",
        ("unreachable insn 2",),
        I.program(R0_0, I.jmp_imm(I.JEQ, I.R0, 0, 1), R0_0, EXIT),
    ),
    "jump-out-of-range": Pair(
        I.program(I.ja(5)), "EINVAL", ("jump out of range",), I.program(R0_0, I.ja(0), EXIT)
    ),
    "unknown-opcode": Pair(
        struct.pack("<BBhi", 0xFF, 0, 0, 0) + R0_0 + EXIT,
        "EINVAL",
        ("unknown opcode ff",),
        I.program(R0_0, R0_0, EXIT),
    ),
    "unknown-helper": Pair(
        I.program(I.call(99999), EXIT),
        "EINVAL",
        ("invalid func unknown#99999",),
        I.program(I.call(I.Helper.ktime_get_ns), EXIT),
    ),
    "no-exit": Pair(I.program(R0_0), "EINVAL", ("last insn is not an exit or jmp",), I.program(R0_0, EXIT)),
    "infinite-loop": Pair(
        I.program(R0_0, I.ja(-1)), "EINVAL", ("infinite loop detected", "back-edge"), COUNTED_LOOP
    ),
    "gpl-only-helper": Pair(
        _read_kernel("Proprietary")[1],
        "EINVAL",
        ("cannot call GPL-restricted function from non-GPL compatible program",),
        _read_kernel("GPL")[1],
        prog_type=ProgType.KPROBE,
        license="Proprietary",
    ),
}


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_rejected(pair: Pair):
    with pytest.raises(BPFError) as exc:
        L.prog_load(pair.prog_type, "rejected", pair.license, pair.rejected)
    err = exc.value
    assert (err.op, err.errno_name) == ("bpf_prog_load", pair.errno_name), err
    assert any(s in err.log for s in pair.says), err.log[-2000:]


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_accepted_twin(pair: Pair, close_later):
    fd = close_later(L.prog_load(pair.prog_type, "accepted", pair.accepted_license, pair.accepted))
    info = L.prog_info(fd)
    assert (info.type, info.name) == (pair.prog_type, "accepted")
    assert info.insn_count >= 2
