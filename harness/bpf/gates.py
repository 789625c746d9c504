"""Kernel version and feature gates for cases: a table of minimum kernels and one skip-or-fail rule.

    @pytest.mark.min_kernel("5.8")                     # skip below 5.8
    @pytest.mark.requires(map_type="CGRP_STORAGE")     # skip below 6.2, FAIL if missing at >= 6.2
    @pytest.mark.requires(prog_type="NETFILTER")
    @pytest.mark.requires(helper=("KPROBE", 130))      # bpf_ringbuf_output from a kprobe

The rule (``apply``): below the feature's first kernel the case is skipped;
at or above it the feature is probed and its absence is a failure, because
then it is a regression or a kernel config gap, not an old kernel. A probe
that cannot tell (bpf() refused it: a missing capability, a host policy)
skips with the probe's reason; a gate never errors and never passes unprobed.
Versions compare by major.minor only: Debian's "6.1.0-56-amd64" hides the
real sublevel, and features arrive in minor releases.

The plugin registers it; without the plugin, ``-p harness.bpf.gates``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable

import pytest
from packaging.version import Version

from harness.bpf import probes
from harness.bpf.uapi import MapType, ProgType

# name -> (first kernel, config that provides it)
MAP_TYPES: dict[str, tuple[str, str]] = {
    "HASH": ("3.19", "CONFIG_BPF_SYSCALL"),
    "ARRAY": ("3.19", "CONFIG_BPF_SYSCALL"),
    "PROG_ARRAY": ("4.2", "CONFIG_BPF_SYSCALL"),
    "PERF_EVENT_ARRAY": ("4.3", "CONFIG_BPF_SYSCALL"),
    "PERCPU_HASH": ("4.6", "CONFIG_BPF_SYSCALL"),
    "PERCPU_ARRAY": ("4.6", "CONFIG_BPF_SYSCALL"),
    "STACK_TRACE": ("4.6", "CONFIG_PERF_EVENTS"),
    "CGROUP_ARRAY": ("4.8", "CONFIG_CGROUPS"),
    "LRU_HASH": ("4.10", "CONFIG_BPF_SYSCALL"),
    "LRU_PERCPU_HASH": ("4.10", "CONFIG_BPF_SYSCALL"),
    "LPM_TRIE": ("4.11", "CONFIG_BPF_SYSCALL"),
    "ARRAY_OF_MAPS": ("4.12", "CONFIG_BPF_SYSCALL"),
    "HASH_OF_MAPS": ("4.12", "CONFIG_BPF_SYSCALL"),
    "QUEUE": ("4.20", "CONFIG_BPF_SYSCALL"),
    "STACK": ("4.20", "CONFIG_BPF_SYSCALL"),
    "SK_STORAGE": ("5.2", "CONFIG_NET"),
    "RINGBUF": ("5.8", "CONFIG_BPF_SYSCALL"),
    "TASK_STORAGE": ("5.11", "CONFIG_BPF_SYSCALL"),
    # 9330986c0300 "bpf: Add bloom filter map implementation", v5.16; Debian's
    # 5.10.262 refuses it with EINVAL (measured under this harness).
    "BLOOM_FILTER": ("5.16", "CONFIG_BPF_SYSCALL"),
    # 583c1f420173 "bpf: Define new BPF_MAP_TYPE_USER_RINGBUF map type", v6.1.
    "USER_RINGBUF": ("6.1", "CONFIG_BPF_SYSCALL"),
    "CGRP_STORAGE": ("6.2", "CONFIG_CGROUPS and CONFIG_DEBUG_INFO_BTF"),
    "ARENA": ("6.9", "CONFIG_BPF_SYSCALL, CONFIG_MMU, x86-64/arm64 JIT"),
}

PROG_TYPES: dict[str, tuple[str, str]] = {
    "SOCKET_FILTER": ("3.19", "CONFIG_BPF_SYSCALL"),
    "KPROBE": ("4.1", "CONFIG_KPROBE_EVENTS and CONFIG_BPF_EVENTS"),
    "SCHED_CLS": ("4.1", "CONFIG_NET_CLS_BPF"),
    "SCHED_ACT": ("4.1", "CONFIG_NET_ACT_BPF"),
    "TRACEPOINT": ("4.7", "CONFIG_BPF_EVENTS"),
    "XDP": ("4.8", "CONFIG_NET"),
    "PERF_EVENT": ("4.9", "CONFIG_BPF_EVENTS"),
    "CGROUP_SKB": ("4.10", "CONFIG_CGROUP_BPF"),
    "CGROUP_SOCK": ("4.10", "CONFIG_CGROUP_BPF"),
    "SOCK_OPS": ("4.13", "CONFIG_CGROUP_BPF"),
    "CGROUP_DEVICE": ("4.15", "CONFIG_CGROUP_BPF"),
    "RAW_TRACEPOINT": ("4.17", "CONFIG_BPF_EVENTS"),
    "CGROUP_SOCK_ADDR": ("4.17", "CONFIG_CGROUP_BPF"),
    "CGROUP_SYSCTL": ("5.2", "CONFIG_CGROUP_BPF"),
    "CGROUP_SOCKOPT": ("5.3", "CONFIG_CGROUP_BPF"),
    "TRACING": ("5.5", "CONFIG_DEBUG_INFO_BTF"),
    "LSM": ("5.7", "CONFIG_BPF_LSM"),
    "SK_LOOKUP": ("5.9", "CONFIG_NET"),
    "SYSCALL": ("5.15", "CONFIG_BPF_SYSCALL"),
    "NETFILTER": ("6.4", "CONFIG_NETFILTER_BPF_LINK"),
}
# Loading these needs a BTF attach target: a bare probe always says no, so gate by version only.
UNPROBED_PROG_TYPES = {"TRACING", "LSM", "EXT", "STRUCT_OPS"}

# helper id -> (name, first kernel, config)
HELPERS: dict[int, tuple[str, str, str]] = {
    1: ("bpf_map_lookup_elem", "3.19", "CONFIG_BPF_SYSCALL"),
    2: ("bpf_map_update_elem", "3.19", "CONFIG_BPF_SYSCALL"),
    3: ("bpf_map_delete_elem", "3.19", "CONFIG_BPF_SYSCALL"),
    5: ("bpf_ktime_get_ns", "4.1", "CONFIG_BPF_SYSCALL"),
    6: ("bpf_trace_printk", "4.1", "CONFIG_BPF_EVENTS"),
    7: ("bpf_get_prandom_u32", "4.1", "CONFIG_BPF_SYSCALL"),
    8: ("bpf_get_smp_processor_id", "4.1", "CONFIG_BPF_SYSCALL"),
    12: ("bpf_tail_call", "4.2", "CONFIG_BPF_SYSCALL"),
    14: ("bpf_get_current_pid_tgid", "4.2", "CONFIG_BPF_SYSCALL"),
    15: ("bpf_get_current_uid_gid", "4.2", "CONFIG_BPF_SYSCALL"),
    16: ("bpf_get_current_comm", "4.2", "CONFIG_BPF_SYSCALL"),
    113: ("bpf_probe_read_kernel", "5.5", "CONFIG_BPF_EVENTS"),
    125: ("bpf_ktime_get_boot_ns", "5.8", "CONFIG_BPF_SYSCALL"),
    130: ("bpf_ringbuf_output", "5.8", "CONFIG_BPF_SYSCALL"),
    131: ("bpf_ringbuf_reserve", "5.8", "CONFIG_BPF_SYSCALL"),
    132: ("bpf_ringbuf_submit", "5.8", "CONFIG_BPF_SYSCALL"),
    181: ("bpf_loop", "5.17", "CONFIG_BPF_SYSCALL"),
    209: ("bpf_user_ringbuf_drain", "6.1", "CONFIG_BPF_SYSCALL"),
    210: ("bpf_cgrp_storage_get", "6.2", "CONFIG_CGROUPS"),
}


@dataclasses.dataclass(frozen=True)
class Gate:
    what: str  # plural noun phrase: "CGRP_STORAGE maps"
    min_kernel: str
    config: str
    present: Callable[[], probes.Probe] | None  # None: gate by version only


def kernel_version(release: str) -> Version:
    """major.minor of a uname release: "6.1.0-56-amd64" -> 6.1, "6.18.44-fc-v669" -> 6.18."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise ValueError(f"cannot read a kernel version from {release!r}")
    return Version(f"{m.group(1)}.{m.group(2)}")


def apply(gate: Gate, release: str) -> None:
    """The rule: skip below gate.min_kernel; at or above it, fail if the feature is absent."""
    if kernel_version(release) < kernel_version(gate.min_kernel):
        pytest.skip(f"{gate.what} need kernel >= {gate.min_kernel}; running {release}")
    if gate.present is None:
        return
    probe = gate.present()
    if probe.present is None:  # refused (privileges, host policy) or an errno that says nothing
        pytest.skip(probe.reason)
    if not probe.present:
        pytest.fail(
            f"kernel {release} >= {gate.min_kernel} but {gate.what} are missing ({probe.reason}): "
            f"regression or config ({gate.config})",
            pytrace=False,
        )


def _enum_name(value, enum_cls, table: dict, kind: str) -> str:
    name = value.name if isinstance(value, enum_cls) else str(value).upper()
    if name not in table:
        raise pytest.UsageError(
            f"unknown {kind} {value!r} in a requires marker; "
            f"known: {', '.join(sorted(table))} (add it to harness/bpf/gates.py)"
        )
    return name


def gates_for(marker) -> list[Gate]:
    """The gates one ``requires(...)`` marker asks for."""
    gates = []
    for key, value in marker.kwargs.items():
        if key == "map_type":
            name = _enum_name(value, MapType, MAP_TYPES, "map type")
            first, config = MAP_TYPES[name]
            gates.append(
                Gate(f"{name} maps", first, config, functools.partial(probes.probe_map_type, MapType[name]))
            )
        elif key == "prog_type":
            name = _enum_name(value, ProgType, PROG_TYPES, "program type")
            first, config = PROG_TYPES[name]
            probe = (
                None
                if name in UNPROBED_PROG_TYPES
                else functools.partial(probes.probe_prog_type, ProgType[name])
            )
            gates.append(Gate(f"{name} programs", first, config, probe))
        elif key == "helper":
            prog, helper_id = value
            pname = _enum_name(prog, ProgType, PROG_TYPES, "program type")
            if helper_id not in HELPERS:
                raise pytest.UsageError(
                    f"no minimum kernel known for helper {helper_id}; add it to harness/bpf/gates.py"
                )
            hname, first, config = HELPERS[helper_id]
            prog_first, prog_config = PROG_TYPES[pname]
            first = max(first, prog_first, key=kernel_version)
            helper_probe = (
                None
                if pname in UNPROBED_PROG_TYPES
                else functools.partial(probes.probe_helper, ProgType[pname], helper_id)
            )
            gates.append(
                Gate(
                    f"calls to {hname}#{helper_id} from {pname} programs",
                    first,
                    f"{config}, {prog_config}",
                    helper_probe,
                )
            )
        else:
            raise pytest.UsageError(f"requires() takes map_type=, prog_type= or helper=, not {key}=")
    return gates


def check_gates(item, release: str | None = None) -> None:
    """Skip or fail item according to its min_kernel and requires markers."""
    release = release or os.uname().release
    for marker in item.iter_markers("min_kernel"):
        (version,) = marker.args
        apply(Gate(f"tests marked min_kernel({version!r})", version, "", None), release)
    for marker in item.iter_markers("requires"):
        for gate in gates_for(marker):
            apply(gate, release)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "min_kernel(version): skip on kernels older than version (major.minor)"
    )
    config.addinivalue_line(
        "markers",
        "requires(map_type=, prog_type=, helper=(prog_type, id)): skip below the feature's first kernel "
        "(table in harness/bpf/gates.py), fail if it is missing on a kernel that should have it",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    check_gates(item)


def newest_catalog_kernel() -> Version:
    from harness.kernels.catalog import load_catalog  # noqa: PLC0415 - only on the host

    return max(kernel_version(entry.series) for entry in load_catalog().entries)


def pytest_collection_modifyitems(config, items) -> None:
    """A gate no catalog kernel can pass could never run: that is an error, not a skip forever."""
    if config.getoption("harness_guest_kernel", None):
        return  # checked on the host already
    newest = None
    stale = []
    for item in items:
        versions = [m.args[0] for m in item.iter_markers("min_kernel")]
        versions += [g.min_kernel for m in item.iter_markers("requires") for g in gates_for(m)]
        for version in versions:
            newest = newest or newest_catalog_kernel()
            if kernel_version(version) > newest:
                stale.append(f"{item.nodeid} needs kernel >= {version}")
    if stale:
        raise pytest.UsageError(
            f"gates above the newest kernel in the catalog ({newest}) can never run:\n  "
            + "\n  ".join(sorted(set(stale)))
            + "\nadd a newer kernel to kernels/catalog.toml, or correct the gate"
        )
