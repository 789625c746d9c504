"""Encodings produced by harness.insn, checked against hand-assembled bytes."""

from __future__ import annotations

import pytest

from harness import insn as I


@pytest.mark.parametrize(
    "encoded, expected",
    [
        pytest.param(I.mov64_imm(I.R0, 0), "b700000000000000", id="r0 = 0"),
        pytest.param(I.mov64_imm(I.R1, 0xFFFFFFFF), "b7010000ffffffff", id="r1 = 0xffffffff (as -1)"),
        pytest.param(I.mov64_imm(I.R1, -1), "b7010000ffffffff", id="r1 = -1"),
        pytest.param(I.mov64_reg(I.R0, I.R5), "bf50000000000000", id="r0 = r5"),
        pytest.param(I.exit_(), "9500000000000000", id="exit"),
        pytest.param(I.call(1), "8500000001000000", id="call 1"),
        pytest.param(I.call(I.Helper.ktime_get_ns), "8500000005000000", id="call ktime_get_ns"),
        pytest.param(I.ja(-1), "0500ffff00000000", id="goto -1"),
        pytest.param(I.jmp_imm(I.JNE, I.R1, 0, -2), "5501feff00000000", id="if r1 != 0 goto -2"),
        pytest.param(I.jmp_reg(I.JGT, I.R1, I.R2, 3), "2d21030000000000", id="if r1 > r2 goto +3"),
        pytest.param(I.alu64_imm(I.ADD, I.R2, -4), "07020000fcffffff", id="r2 += -4"),
        pytest.param(I.alu64_imm(I.SUB, I.R1, 1), "1701000001000000", id="r1 -= 1"),
        pytest.param(I.alu64_reg(I.XOR, I.R3, I.R4), "af43000000000000", id="r3 ^= r4"),
        pytest.param(I.st_mem(I.DW, I.R10, -520, 0), "7a0af8fd00000000", id="*(u64 *)(r10 - 520) = 0"),
        pytest.param(I.st_mem(I.W, I.R10, -4, 7), "620afcff07000000", id="*(u32 *)(r10 - 4) = 7"),
        pytest.param(I.stx_mem(I.DW, I.R10, I.R1, -8), "7b1af8ff00000000", id="*(u64 *)(r10 - 8) = r1"),
        pytest.param(I.ldx_mem(I.W, I.R0, I.R1, 4), "6110040000000000", id="r0 = *(u32 *)(r1 + 4)"),
        pytest.param(I.ldx_mem(I.B, I.R0, I.R1, 0), "7110000000000000", id="r0 = *(u8 *)(r1 + 0)"),
        pytest.param(I.ldx_mem(I.H, I.R0, I.R1, 2), "6910020000000000", id="r0 = *(u16 *)(r1 + 2)"),
    ],
)
def test_known_encodings(encoded, expected):
    assert encoded.hex() == expected


def test_ld_imm64_takes_two_slots_low_half_first():
    encoded = I.ld_imm64(I.R1, 0x1122334455667788)
    assert len(encoded) == 16
    assert encoded.hex() == "18010000887766550000000044332211"


def test_ld_imm64_negative():
    assert I.ld_imm64(I.R0, -1).hex() == "18000000ffffffff00000000ffffffff"


def test_ld_map_fd_marks_src_reg_1():
    assert I.ld_map_fd(I.R1, 5).hex() == "18110000050000000000000000000000"


def test_program_concatenates():
    prog = I.program(I.mov64_imm(I.R0, 0), I.exit_())
    assert prog == bytes.fromhex("b7000000000000009500000000000000")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: I.mov64_imm(11, 0), id="register 11"),
        pytest.param(lambda: I.mov64_reg(I.R0, -1), id="register -1"),
        pytest.param(lambda: I.ja(1 << 15), id="offset too big"),
        pytest.param(lambda: I.ja(-(1 << 15) - 1), id="offset too small"),
        pytest.param(lambda: I.mov64_imm(I.R0, 1 << 32), id="imm too big"),
        pytest.param(lambda: I.mov64_imm(I.R0, -(1 << 31) - 1), id="imm too small"),
        pytest.param(lambda: I.ld_imm64(I.R0, 1 << 64), id="imm64 too big"),
    ],
)
def test_out_of_range_fields_are_refused(build):
    with pytest.raises(ValueError):
        build()
