"""Guest-side cases for tests/vm/test_warm.py: what one run leaves in a warm VM, and what the next sees.

Not collected by ``pytest tests/`` (the name does not match test_*.py).
"""

import os
import subprocess
import sys
from pathlib import Path

from harness.bpf import insn, libbpf
from harness.bpf.uapi import AttachType, MapType, ProgType

CGROUP = Path("/sys/fs/cgroup/harness-warm")
PINS = [Path("/sys/fs/bpf/harness-warm-map"), Path("/sys/fs/bpf/harness-warm-dir/prog")]
LEFT = "warm_left"  # the name of every object the first run leaves
SCRATCH = [Path("/tmp/harness-warm-file"), Path("/tmp/harness-warm-dir/inner")]
# a process that escapes the run's process group and session and holds a map: the run's
# clean-up must find it, or the map it holds would end the VM as a leftover
ESCAPER = "import os, time\nif os.fork(): os._exit(0)\nos.setsid()\nprint('escaped', flush=True)\ntime.sleep(3600)\n"


def _accept_all(name: str) -> int:
    # cgroup_skb: r0 = 1 (let the packet through); exit
    return libbpf.prog_load(
        ProgType.CGROUP_SKB, name, "GPL", insn.program(insn.mov64_imm(0, 1), insn.exit_())
    )


def _names() -> set[str]:
    found = set()
    for ids, get, info in (
        (libbpf.prog_ids, libbpf.prog_get_fd_by_id, libbpf.prog_info),
        (libbpf.map_ids, libbpf.map_get_fd_by_id, libbpf.map_info),
    ):
        for id_ in ids():
            try:
                fd = get(id_)
            except libbpf.BPFError:
                continue  # freed meanwhile
            try:
                found.add(info(fd).name)
            finally:
                os.close(fd)
    return found


def test_leave_pins_cgroup_and_attached_programs():
    """Everything stays behind when this process exits: pins, a cgroup, programs attached to it."""
    CGROUP.mkdir()
    cg = os.open(CGROUP, os.O_RDONLY | os.O_DIRECTORY)
    libbpf.prog_attach(_accept_all(LEFT), cg, AttachType.CGROUP_INET_INGRESS)
    link = libbpf.link_create(_accept_all(LEFT), cg, AttachType.CGROUP_INET_EGRESS)
    libbpf.obj_pin(libbpf.map_create(MapType.HASH, LEFT, 4, 4, 8), PINS[0])
    PINS[1].parent.mkdir()
    libbpf.obj_pin(_accept_all(LEFT), PINS[1])
    libbpf.obj_pin(link, "/sys/fs/bpf/harness-warm-link")
    assert LEFT in _names()
    SCRATCH[1].parent.mkdir()
    for path in SCRATCH:
        path.write_text("left by an earlier run")
    held = libbpf.map_create(MapType.ARRAY, "warm_escaper", 4, 4, 1)
    escaper = subprocess.Popen(
        [sys.executable, "-c", ESCAPER, "warm_escaper"], stdout=subprocess.PIPE, text=True, pass_fds=[held]
    )
    assert escaper.stdout is not None and escaper.stdout.readline() == "escaped\n"
    os.close(held)  # the escaped process holds the map now
    assert "warm_escaper" in _names()


def _escaper_runs() -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if b"warm_escaper" in (entry / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_nothing_of_an_earlier_run_is_left():
    assert not CGROUP.exists()
    assert not any(p.exists() for p in [*PINS, PINS[1].parent, Path("/sys/fs/bpf/harness-warm-link")])
    assert LEFT not in _names() and "warm_escaper" not in _names()
    assert not any(p.exists() for p in [*SCRATCH, SCRATCH[1].parent])
    assert not _escaper_runs()


def test_leave_a_program_on_the_root_cgroup():
    """Attached with the legacy API to a cgroup that existed at boot: the harness cannot see it."""
    root = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
    libbpf.prog_attach(_accept_all("warm_root"), root, AttachType.CGROUP_INET_EGRESS, 2)  # ALLOW_MULTI


def test_root_cgroup_has_no_program():
    root = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
    assert libbpf.prog_query(root, AttachType.CGROUP_INET_EGRESS).prog_ids == []
    assert "warm_root" not in _names()


def test_panic():
    Path("/proc/sysrq-trigger").write_text("c")


def test_after_panic(bpf_kernel):
    assert bpf_kernel


def test_sleeps_a_while():
    """Runs while the harness's test kills the pytest process that asked for it."""
    import time

    (Path(os.environ["HARNESS_RESULTS_DIR"]) / "sleeping").write_text("yes")
    time.sleep(15)
