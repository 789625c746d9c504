"""Child process for test_lifecycle.py: create BPF objects, answer their ids, exit.

    load                  a program holding a map, plus a lone map
    attach CGROUP_DIR     BPF_PROG_ATTACH a CGROUP_SKB program (egress)
    pin PATH              pin a program on bpffs
    link CGROUP_DIR [PIN] bpf_link a CGROUP_SKB program (ingress), maybe pin the link

test_lifecycle runs ``serve`` in a process of a multiprocessing fork server: the server was
started with exec, so its children share no bpf fds with the test process, and the interpreter
starts once per session instead of once per child (3.5 s each in a TCG guest). By hand:
``python -B cases/_child.py load`` prints the ids as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

from harness import insn as I
from harness import libbpf as L

ALLOW = I.program(I.mov64_imm(I.R0, 1), I.exit_())


def _cgroup_skb(attach_type: L.AttachType) -> int:
    return L.prog_load(L.ProgType.CGROUP_SKB, "child_skb", "GPL", ALLOW, expected_attach_type=attach_type)


def main(argv: list[str]) -> dict:
    command, args = argv[0], argv[1:]
    if command == "load":
        held = L.map_create(L.MapType.ARRAY, "child_held", 4, 8, 1)
        lone = L.map_create(L.MapType.HASH, "child_lone", 4, 4, 8)
        prog = L.prog_load(
            L.ProgType.SOCKET_FILTER,
            "child_prog",
            "GPL",
            I.program(I.ld_map_fd(I.R1, held), I.mov64_imm(I.R0, 0), I.exit_()),
        )
        return {
            "prog_id": L.prog_info(prog).id,
            "held_map_id": L.map_info(held).id,
            "lone_map_id": L.map_info(lone).id,
        }
    if command == "attach":
        prog = _cgroup_skb(L.AttachType.CGROUP_INET_EGRESS)
        cgroup = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
        L.prog_attach(prog, cgroup, L.AttachType.CGROUP_INET_EGRESS, L.BPF_F_ALLOW_MULTI)
        return {"prog_id": L.prog_info(prog).id}
    if command == "pin":
        prog = L.prog_load(L.ProgType.SOCKET_FILTER, "child_pinned", "GPL", ALLOW)
        L.obj_pin(prog, args[0])
        return {"prog_id": L.prog_info(prog).id}
    if command == "link":
        prog = _cgroup_skb(L.AttachType.CGROUP_INET_INGRESS)
        cgroup = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
        link = L.link_create(prog, cgroup, L.AttachType.CGROUP_INET_INGRESS)
        if len(args) > 1:
            L.obj_pin(link, args[1])
        return {"prog_id": L.prog_info(prog).id, "link_id": L.link_info(link).id}
    raise SystemExit(f"unknown command {command!r}; see the module docstring")


def serve(argv: list[str], answer) -> None:
    """main(argv), its ids sent on the connection ``answer``; the process then exits."""
    answer.send(main(argv))
    answer.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
