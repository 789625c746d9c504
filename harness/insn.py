"""The instruction builder under its public name: ``from harness import insn as I``."""

from harness.bpf.insn import *  # noqa: F403
