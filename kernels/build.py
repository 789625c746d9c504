"""Build a kernel source tree for BPF testing with `vng --build` and the bpf.config fragment, then prove the fragment stuck."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

from . import bzimage, local
from .catalog import LocalSpec
from .errors import KernelError
from .kernel import Kernel

_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def default_fragment() -> Path:
    return Path(str(resources.files("harness.kernels") / "bpf.config"))


def parse_config(text: str) -> dict[str, str]:
    """CONFIG_* assignments of a .config or fragment; "is not set" and =n both read as "n"."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _LINE.match(line):
            out[m.group(1)] = "n" if m.group(2) == "n" else m.group(2)
        elif m := _UNSET.match(line):
            out[m.group(1)] = "n"
    return out


def options_not_applied(fragment: str, config: str) -> list[str]:
    """Fragment options whose value the final .config does not have.

    Kconfig drops a requested option silently when a dependency is missing
    or the symbol does not exist in that version; this makes it loud.
    Each item reads "CONFIG_X=y (got: not set)".
    """
    want, have = parse_config(fragment), parse_config(config)
    bad = []
    for key, value in want.items():
        got = have.get(key, "n")
        if got != value:
            bad.append(f"{key}={value} (got: {'not set' if got == 'n' else got})")
    return bad


def build_command(fragment: Path, *, force_config: bool, verbose: bool = False) -> list[str]:
    cmd = ["vng", "--build", "--config", str(fragment)]
    if force_config:
        # Without --force vng keeps an existing .config and ignores the fragment.
        cmd.append("--force")
    if verbose:
        cmd.append("--verbose")
    return cmd


def vng_env() -> dict[str, str]:
    """The environment for vng: it calls virtme-run and friends through a
    shell, so the directory of our interpreter's scripts must be on PATH."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    return env


def check_tree(tree: Path, fragment: Path) -> list[str]:
    config = tree / ".config"
    if not config.is_file():
        raise KernelError(f"{tree} has no .config after the build; vng did not configure it")
    return options_not_applied(fragment.read_text(), config.read_text())


def build(tree: Path, *, fragment: Path | None = None, verbose: bool = False) -> Kernel:
    """Configure and build tree in place (about 10 minutes on 2 cores) and return its Kernel."""
    tree = tree.absolute()
    fragment = (fragment or default_fragment()).absolute()
    if not (tree / "Makefile").is_file() or not (tree / "Kconfig").is_file():
        raise KernelError(
            f"{tree} is not a kernel source tree (no Makefile and Kconfig); "
            "pass the top directory of an unpacked kernel source"
        )
    if not fragment.is_file():
        raise KernelError(f"config fragment {fragment} does not exist")
    cmd = build_command(fragment, force_config=(tree / ".config").exists(), verbose=verbose)
    try:
        r = subprocess.run(cmd, cwd=tree, env=vng_env())
    except FileNotFoundError:
        raise KernelError(
            "vng (virtme-ng) is not installed in this environment: pip install virtme-ng"
        ) from None
    if r.returncode != 0:
        raise KernelError(
            f"kernel build in {tree} failed (vng exit {r.returncode}); the compiler output is above. "
            "It needs: apt-get install bc flex bison libelf-dev libssl-dev dwarves"
        )
    bad = check_tree(tree, fragment)
    if bad:
        raise KernelError(
            f"kernel built in {tree}, but these options of {fragment.name} did not stick: "
            + ", ".join(bad)
            + ". Their dependencies are missing or the option does not exist in this kernel "
            "version; fix the fragment (or pass another with --config) and build again"
        )
    image = tree / "arch" / "x86" / "boot" / "bzImage"
    return local.kernel(LocalSpec(tree, "tree", image, bzimage.read_release(image)))
