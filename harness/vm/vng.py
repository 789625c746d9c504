"""The vng command line: which vng, how it boots a kernel, what it runs in the guest, its environment.

The launcher (``harness.vm.launcher``) and the benchmarks (``bench/``) both
build their virtme-ng invocations here, so the floor the benchmarks measure is
the boot the harness does::

    vng --verbose --force-9p -r IMAGE -m 1G -p 2 --cwd DIR [--disable-kvm]
        [--rwdir A=A] --append modprobe.blacklist=... --append tsc=reliable ... -- 'SHELL COMMAND'

``HARNESS_VNG`` names the vng executable to run instead of the one found
next to the interpreter or on PATH; the harness's own tests point it at
``tests/vm/fakevng.py``, which runs the guest agent without a kernel.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.vm import pagecache

VNG_ENV = "HARNESS_VNG"

# udev autoloads drivers for every device of QEMU's q35 machine; loading them
# over 9p under TCG took 10-20 s of each boot (kvm alone about 7 s) and BPF
# tests need none of them. libkmod honours this list for udev's alias loads.
UNNEEDED_MODULES = (
    "kvm",
    "kvm_amd",
    "kvm_intel",
    "ahci",
    "libahci",
    "sr_mod",
    "cdrom",
    "sg",
    "iTCO_wdt",
    "iTCO_vendor_support",
    "i6300esb",
    "lpc_ich",
    "i2c_i801",
    "pcspkr",
    "powernow_k8",
    "evdev",
    "joydev",
    "serio_raw",
    "intel_agp",
    "aesni_intel",
    "ghash_clmulni_intel",
    "crc32_pclmul",
    "button",
)
BLACKLIST = f"modprobe.blacklist={','.join(UNNEEDED_MODULES)}"

# virtme-ng-init runs systemd-tmpfiles and udev's coldplug (`udevadm trigger`, `settle`) before
# the script, finding them on PATH, an inherited PATH first; the kernel hands `PATH=...` on its
# command line to init as its environment. The shims make them what a test run needs (see the
# files): 4.6 s of a quiet TCG boot, 20 s and more of a loaded one.
INIT_SHIMS = Path(__file__).with_name("initshims")
_CMDLINE_SAFE = re.compile(r"[\w./+-]+")  # a kernel argument cannot quote everything a path holds


# The guest command's start, where the init shims ran: show udevd again (systemd-tmpfiles hid it)
# and start it in the background, so it comes up beside the interpreter. pagecache.sh may mount
# /usr over the hidden directory first; then the unmount fails harmlessly and udevd is there anyway.
LATE_UDEVD = (
    "if [ -r /run/harness-udevd-later ]; then "
    '(while read -r dir; do umount "$dir" 2> /dev/null; '
    '[ -x "$dir/systemd-udevd" ] && udevd="$dir/systemd-udevd"; done < /run/harness-udevd-later; '
    '[ -n "$udevd" ] && exec "$udevd" --daemon) & fi; '
)


def quick_init() -> tuple[str, ...]:
    """The kernel argument that puts the init shims first on init's PATH (none where it cannot)."""
    # the initramfs's /init (busybox) runs with this PATH too: keep the usual directories after the shims
    return (
        (f"PATH={INIT_SHIMS}:/usr/sbin:/usr/bin:/sbin:/bin",)
        if _CMDLINE_SAFE.fullmatch(str(INIT_SHIMS))
        else ()
    )


# Kernel arguments that cut a TCG boot and what runs after it, without changing what BPF does:
# - tsc=reliable: under TCG the kernel's TSC sync check fails ("TSCs unsynchronized") and it falls
#   back to the HPET, whose every read is an emulated MMIO access: each clock read of the boot,
#   of Python and of the tests;
# - cryptomgr.notests: the crypto self-tests at boot.
# Together 1.5-2 s of a 20 s cold run (2026-12-07, 6.1 under TCG, three runs each in turn).
# Never mitigations=off: it changes what the verifier allows unprivileged programs.
BOOT_ARGS = ("tsc=reliable", "cryptomgr.notests")
# the same boot without them, for bench/warm.py: a later argument of the same name wins
WITHOUT_BOOT_ARGS = ("tsc=unstable", "cryptomgr.notests=0")

FULL_INIT_APPEND = (
    BLACKLIST,
    *BOOT_ARGS,
)  # kernel arguments of a boot with virtme-ng's whole init (--vm-full-init)
APPEND = (BLACKLIST, *BOOT_ARGS, *quick_init())  # kernel arguments of every other boot


class VngError(Exception):
    """vng cannot be found or run."""


def find_vng() -> str:
    """$HARNESS_VNG, else vng next to the interpreter (a virtualenv), else vng on PATH."""
    override = os.environ.get(VNG_ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise VngError(f"{VNG_ENV}={override} is not an executable file; unset it to use virtme-ng's vng")
        return override
    local = Path(sys.executable).parent / "vng"
    found = str(local) if local.exists() else shutil.which("vng")
    if not found:
        raise VngError("vng (virtme-ng) is not installed: pip install virtme-ng")
    return found


def guest_command(
    results_dir: Path | None = None, pyzips: Sequence[Path] = (), cached: Sequence[Path] = ()
) -> str:
    """The shell command that starts the guest agent, importing from ``pyzips`` first
    (harness.vm.pyzip), after mounting ``cached`` through the page cache (harness.vm.pagecache).

    ``-P``: the harness comes from its zip even when the working directory is
    a checkout of the harness; the agent puts the directory back first on
    ``sys.path`` for the tests, as ``python -m pytest`` does."""
    agent = shlex.join([sys.executable, "-B", "-P", "-m", "harness.guest"])
    env = []
    if quick_init():  # the shims are for init alone: tests get udev's and systemd's own tools
        env.append(f'PATH="${{PATH#{INIT_SHIMS}:}}"')
    if results_dir is not None:
        env.append(f"HARNESS_RESULTS_DIR={shlex.quote(str(results_dir))}")
    if pyzips:
        env.append(f"PYTHONPATH={shlex.quote(':'.join(map(str, pyzips)))}")
    late = LATE_UDEVD if quick_init() else ""
    return late + pagecache.guest_command(cached) + " ".join([*env, "exec", agent])


def command(
    image: Path,
    cwd: Path,
    script: str,
    *,
    memory: str = "1G",
    cpus: int = 2,
    kvm: bool = False,
    rwdirs: Iterable[Path] = (),
    append: Sequence[str] = APPEND,
    verbose: bool = True,
    force_9p: bool = True,
    pvh: Path | None = None,
    cached: Sequence[Path] = (),
) -> list[str]:
    """vng booting ``image`` and running the shell command ``script`` in ``cwd``.

    ``verbose`` (the kernel console on standard error) and ``force_9p`` are
    what the harness always uses; the benchmarks turn them off only to show
    what a bare vng costs. ``cached``: directories shared again for the page cache
    (harness.vm.pagecache; the script mounts them).
    """
    cmd = [find_vng()]
    if verbose:
        cmd.append("--verbose")
    if force_9p:
        # 9p is where vng ends up here anyway; asking first costs a failed
        # virtiofsd probe of about 3 s per boot (bench B1x)
        cmd.append("--force-9p")
    cmd += ["-r", str(image), "-m", memory, "-p", str(cpus), "--cwd", str(cwd)]
    if not kvm:
        cmd.append("--disable-kvm")
    for path in rwdirs:
        cmd += ["--rwdir", f"{path}={path}"]
    for arg in append:
        cmd += ["--append", arg]
    # harness.vm.pvh: vng appends --qemu-opts last (through a shell), and QEMU keeps the last -kernel
    if pvh is not None and _CMDLINE_SAFE.fullmatch(str(pvh)):
        cmd.append(f"--qemu-opts=-kernel {pvh}")
    cmd += pagecache.qemu_options(cached)
    return [*cmd, "--", script]


def environment(home: str, vng: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment vng runs in.

    vng reads default options from ~/.config/virtme-ng: a private HOME keeps a
    user's settings out of test runs. vng calls virtme-run through a shell, so
    the directory vng is in goes first on PATH.
    """
    env = dict(os.environ if base is None else base)
    env["HOME"] = home
    env["PATH"] = f"{Path(vng).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
