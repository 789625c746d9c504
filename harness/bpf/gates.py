"""Kernel version and feature gates for cases: the first kernels of gates.toml and one skip-or-fail rule.

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
import pkgutil
import re
import tomllib
from collections.abc import Callable

import pytest
from packaging.version import Version

from harness.bpf import context, probes
from harness.bpf.uapi import MapType, ProgType

# The first kernels: gates.toml, beside this module (package data, also in the guest's zip). Read
# through the module's loader: importlib.resources parses the whole zip again, 1 s of a TCG guest.
_DATA = pkgutil.get_data("harness.bpf", "gates.toml")
assert _DATA is not None, "harness/bpf/gates.toml is missing from the installation"
_TABLE = tomllib.loads(_DATA.decode())


def _first_kernels(section: str) -> dict[str, tuple[str, str]]:
    """name -> (first kernel, config that provides it), from one section of gates.toml."""
    return {name: (row["first"], row["config"]) for name, row in _TABLE[section].items()}


MAP_TYPES = _first_kernels("map_types")
PROG_TYPES = _first_kernels("prog_types")
# Loading these needs a BTF attach target: a bare probe always says no, so gate by version only.
UNPROBED_PROG_TYPES = {"TRACING", "LSM", "EXT", "STRUCT_OPS"}

# helper id -> (name, first kernel, config)
HELPERS: dict[int, tuple[str, str, str]] = {
    int(id_): (row["name"], row["first"], row["config"]) for id_, row in _TABLE["helpers"].items()
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
            f"known: {', '.join(sorted(table))} (add it to harness/bpf/gates.toml)"
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
                    f"no minimum kernel known for helper {helper_id}; add it to harness/bpf/gates.toml"
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
        "(table in harness/bpf/gates.toml), fail if it is missing on a kernel that should have it",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    check_gates(item)


def pytest_collection_modifyitems(config, items) -> None:
    """A gate no kernel of the run's catalog can pass could never run: an error, not a skip forever."""
    newest_kernel = context.of(config).newest_kernel
    if newest_kernel is None:
        return  # no catalog told (the toolkit alone), or a guest: checked on the host already
    newest = None
    stale = []
    for item in items:
        versions = [m.args[0] for m in item.iter_markers("min_kernel")]
        versions += [g.min_kernel for m in item.iter_markers("requires") for g in gates_for(m)]
        for version in versions:
            newest = newest or kernel_version(newest_kernel())
            if kernel_version(version) > newest:
                stale.append(f"{item.nodeid} needs kernel >= {version}")
    if stale:
        raise pytest.UsageError(
            f"gates above the newest kernel in the catalog ({newest}) can never run:\n  "
            + "\n  ".join(sorted(set(stale)))
            + "\nadd a newer kernel to kernels/catalog.toml, or correct the gate"
        )
