"""Finding kernel splats (panic, oops, BUG, WARN, lockups) in kernel log text."""

from __future__ import annotations

import re

# The first line of every report the kernel prints when something went wrong.
START = re.compile(
    r"(Kernel panic - not syncing|PANIC: early exception|kernel BUG at|BUG: |Oops: |WARNING: CPU: |"
    r"general protection fault|UBSAN: |watchdog: BUG: soft lockup|"
    r"rcu: INFO: rcu_\w+ (self-)?detected stall|INFO: task .* blocked for more than)"
)
END = re.compile(r"---\[ end (trace|Kernel panic)")
MAX_LINES = 80


def find(lines: list[str]) -> str | None:
    """Return the splats in ``lines`` (each up to its end marker), or None."""
    found: list[str] = []
    taking = 0
    for line in lines:
        if START.search(line) and not taking:
            taking = MAX_LINES
            if found:
                found.append("")
        if taking:
            found.append(line.rstrip())
            taking -= 1
            if END.search(line):
                taking = 0
    return "\n".join(found) if found else None


def classify(console_tail: list[str]) -> str:
    """A short reason for a VM that went away, read off its console."""
    text = "\n".join(console_tail)
    if "Kernel panic" in text:
        return "kernel panic"
    if "Oops" in text or "BUG: " in text:
        return "kernel oops"
    return "VM exited"
