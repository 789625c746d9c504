#!/usr/bin/env bash
# One-shot set-up for a fresh Debian/Ubuntu machine: system packages, a
# virtualenv with the harness and its test tools, and the default kernels.
# Idempotent; safe to run before every job.
#
#   ci/setup.sh            system packages + .venv + default kernels
#   KERNELS="6.1 6.12" ci/setup.sh   prefetch other kernels (KERNELS= for none)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# qemu-system-x86: the VMs; udev: virtme-ng's guest uses the host's udevd to
# create its virtio ports (without it output and exit codes are lost); kmod:
# depmod for extracted kernels; file: vng reads the kernel version with it;
# libbpf1: the binding; busybox-static: vng's initramfs fallback; chromium:
# the screenshot test of the HTML report; bpftool: tests in the style of the
# kernel's selftests, and vmlinux.h from BTF. BPF programs in C: clang,
# libbpf-dev (bpf_helpers.h & co); strace (the seed case reads its bpf()
# calls); python3-bpfcc (bcc cases, imported from dist-packages); zstd:
# vmlinux.h from a 6.12+ kernel image (zstd-compressed). gpgv and
# debian-archive-keyring: the Debian archive's signatures on the indexes
# kernels are checked against; dpkg: dpkg-deb unpacks the kernel packages.
PKGS=(qemu-system-x86 udev kmod file libbpf1 busybox-static python3-venv chromium
      python3-dev iproute2 procps bpftool clang libbpf-dev strace python3-bpfcc zstd
      gpgv debian-archive-keyring dpkg)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# The newest kernel of each of the five Debian series (about 600 MB in all,
# a few seconds to fetch here): what ci/cases.sh runs.
DEFAULT_KERNELS="5.10 6.1 6.12 7.2 7.3"
if [ -n "${KERNELS-$DEFAULT_KERNELS}" ]; then
    # shellcheck disable=SC2086
    .venv/bin/python -m harness kernels fetch ${KERNELS-$DEFAULT_KERNELS}
fi
