"""The plugin's command-line and ini options (all under the "bpf-harness" group)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.vm import accel

RESULTS_INI = "bpf_results_dir"
HEADERS_MODES = ("auto", "always", "never")  # --kernel-headers (harness.plugin.headers)


def pytest_addoption(parser):
    group = parser.getgroup("bpf-harness", "kernels in throwaway VMs")
    group.addoption(
        "--kernel",
        action="append",
        dest="bpf_kernels",
        default=[],
        metavar="SPEC",
        help="run every test in a VM booted with this kernel: a catalog name "
        "('6.12.111-1.deb12u1' exact, '6.12.111' its newest build, '6.12' newest 6.12.y, "
        "'6.8' Ubuntu mainline) or a path to a bzImage or a built kernel tree; repeat "
        "for several kernels. Ids and results carry the exact name",
    )
    group.addoption(
        "--accel",
        choices=accel.CHOICES,
        default="auto",
        help="kvm, tcg, or auto: KVM only where it really works (default auto)",
    )
    group.addoption("--vm-memory", default="1G", help="guest memory (default 1G)")
    group.addoption(
        "--vm-cpus",
        type=int,
        default=None,
        help="guest vCPUs (default: the host's CPUs shared among the VMs that run at once, at most 2)",
    )
    group.addoption(
        "--vm-boot-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up on a boot after this long (default 60 with KVM, 300 with TCG)",
    )
    group.addoption(
        "--vm-test-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a test that runs longer is ended as 'VM lost' (default 300)",
    )
    group.addoption(
        "--vm-append",
        action="append",
        default=[],
        metavar="ARG",
        help="one more kernel command-line argument for the guest, e.g. --vm-append=nokaslr "
        "(repeat for more; a later one of the same name wins, as the kernel reads them)",
    )
    group.addoption(
        "--vm-full-init",
        action="store_true",
        help="run virtme-ng's whole init in the guest (systemd-tmpfiles, udev coldplug); by default "
        "the harness skips both and makes only the virtio-port links its agent needs (about 5 s a boot)",
    )
    group.addoption(
        "--reuse-vm",
        action="store_true",
        help="keep each VM running after the run and attach to it next time (same kernel and "
        "VM settings): a rerun starts in about a second. See `python -m harness vm list`",
    )
    group.addoption(
        "--vm-idle-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="with --reuse-vm: a warm VM unused this long powers itself off (default 900)",
    )
    group.addoption(
        "--results-dir",
        type=Path,
        default=None,
        help="write results.json and the VMs' console logs into this directory "
        "(default with --kernel: a new results/<time>-<pid>/ per run, "
        "results/latest pointing at the newest)",
    )
    group.addoption(
        "--results-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the run's results file here (default: <results dir>/results.json)",
    )
    group.addoption(
        "--results-label",
        default=None,
        metavar="TEXT",
        help="a label stored in the results file, e.g. the CI job name",
    )
    group.addoption(
        "--kernel-headers",
        choices=HEADERS_MODES,
        default="auto",
        help="kernel headers for bcc beside each Debian kernel, fetched before the VMs boot: auto "
        "(when a collected test imports bcc or uses the bcc fixture), always, or never (default auto)",
    )
    group.addoption("--offline", action="store_true", help="use only cached kernels; never download")
    group.addoption(
        "--debian-mirror",
        default=None,
        metavar="URL",
        help="Debian archive URL(s), main and security (or HARNESS_DEBIAN_MIRROR); default: the "
        "archives the host's apt sources list",
    )
    group.addoption(
        "--mainline-mirror",
        default=None,
        metavar="URL",
        help="Ubuntu mainline archive URL (or HARNESS_MAINLINE_MIRROR)",
    )
    group.addoption("--harness-guest-kernel", default=None, help=argparse.SUPPRESS)
    parser.addini(
        RESULTS_INI,
        "record results of every run (also without --kernel) under this "
        "directory, one results/<time>-<pid>/ per run",
        default="",
    )


# Options whose value may be a path. pytest chooses its rootdir (and ini file) before it loads
# plugins, so it takes the value of `--results-dir /elsewhere` for a test path then, and the
# rootdir, the ini file and every test id of the run change (measured: ids gained a "project/"
# prefix and the project's pyproject.toml was ignored). With '=' the value stays the option's.
PATH_OPTIONS = ("--kernel", "--results-dir", "--results-json")


def check_path_values(config) -> None:
    """Refuse `--results-dir DIR` (two words) where DIR would have moved pytest's rootdir."""
    args = list(config.invocation_params.args)
    if any(a == "--rootdir" or a.startswith(("--rootdir=", "-c", "--config-file")) for a in args):
        return  # the user fixed the rootdir or the ini file: values cannot move them
    here = config.invocation_params.dir.resolve()
    project = config.inipath.parent if config.inipath else here
    for option, value in zip(args, args[1:], strict=False):
        if option not in PATH_OPTIONS:
            continue
        path = (here / value).resolve()
        # it moved the rootdir if the rootdir now holds it and no ini file above the project does
        moved = path.exists() and path.is_relative_to(config.rootpath)
        if moved and not path.is_relative_to(here) and not path.is_relative_to(project):
            raise pytest.UsageError(
                f"write {option}={value} (with '='): as two words, pytest takes {value} for a test "
                "path when it chooses the rootdir, before it knows this plugin's options, and the "
                f"rootdir became {config.rootpath}; or pass --rootdir"
            )
