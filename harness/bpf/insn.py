"""Build raw eBPF instructions as bytes, for cases that load hand-written programs.

Every function returns the kernel's 8-byte encoding (16 bytes for ld_imm64),
little-endian as on x86-64:

    >>> program(mov64_imm(R0, 0), exit_()).hex()
    'b7000000000000009500000000000000'
"""

from __future__ import annotations

import enum
import struct

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# Instruction classes (low 3 bits of the opcode).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)

# Access sizes and modes for loads and stores.
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM = 0x00, 0x60

# Operand source: K = the immediate, X = the source register.
K, X = 0x00, 0x08

ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH = 0x80, 0x90, 0xA0, 0xB0, 0xC0

JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0

# src_reg of ld_imm64 telling the verifier that imm is a map fd.
PSEUDO_MAP_FD = 1


class Helper(enum.IntEnum):
    """Helper function ids from the kernel's enum bpf_func_id (bpf_<name>)."""

    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    ktime_get_ns = 5
    trace_printk = 6
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    tail_call = 12
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    probe_read_kernel = 113
    ktime_get_boot_ns = 125
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    loop = 181
    user_ringbuf_drain = 209
    cgrp_storage_get = 210


def _encode(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    for name, reg in (("dst", dst), ("src", src)):
        if not 0 <= reg <= 10:
            raise ValueError(f"{name} register must be R0..R10, got {reg}")
    if not -(1 << 15) <= off < (1 << 15):
        raise ValueError(f"offset {off} does not fit in a signed 16-bit field")
    # Accept both -1 and 0xffffffff for the same 32-bit pattern.
    if not -(1 << 31) <= imm < (1 << 32):
        raise ValueError(f"immediate {imm} does not fit in 32 bits")
    if imm >= 1 << 31:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def mov64_imm(dst: int, imm: int) -> bytes:
    return _encode(ALU64 | MOV | K, dst, imm=imm)


def mov64_reg(dst: int, src: int) -> bytes:
    return _encode(ALU64 | MOV | X, dst, src)


def alu64_imm(op: int, dst: int, imm: int) -> bytes:
    return _encode(ALU64 | op | K, dst, imm=imm)


def alu64_reg(op: int, dst: int, src: int) -> bytes:
    return _encode(ALU64 | op | X, dst, src)


def jmp_imm(op: int, dst: int, imm: int, off: int) -> bytes:
    return _encode(JMP | op | K, dst, off=off, imm=imm)


def jmp_reg(op: int, dst: int, src: int, off: int) -> bytes:
    return _encode(JMP | op | X, dst, src, off=off)


def ja(off: int) -> bytes:
    return _encode(JMP | JA, off=off)


def call(helper_id: int) -> bytes:
    return _encode(JMP | CALL, imm=helper_id)


def exit_() -> bytes:
    return _encode(JMP | EXIT)


def st_mem(size: int, dst: int, off: int, imm: int) -> bytes:
    return _encode(ST | MEM | size, dst, off=off, imm=imm)


def stx_mem(size: int, dst: int, src: int, off: int) -> bytes:
    return _encode(STX | MEM | size, dst, src, off=off)


def ldx_mem(size: int, dst: int, src: int, off: int) -> bytes:
    return _encode(LDX | MEM | size, dst, src, off=off)


def ld_imm64(dst: int, imm: int, src: int = 0) -> bytes:
    """Two slots: the first carries the low 32 bits, the second the high 32."""
    if not -(1 << 63) <= imm < (1 << 64):
        raise ValueError(f"immediate {imm} does not fit in 64 bits")
    imm &= (1 << 64) - 1
    return _encode(LD | DW | IMM, dst, src, imm=imm & 0xFFFFFFFF) + _encode(0, imm=imm >> 32)


def ld_map_fd(dst: int, fd: int) -> bytes:
    return ld_imm64(dst, fd, src=PSEUDO_MAP_FD)


def program(*insns: bytes) -> bytes:
    return b"".join(insns)
