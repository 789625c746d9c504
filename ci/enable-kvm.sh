#!/usr/bin/env bash
# Make /dev/kvm usable for the harness, then say whether VMs will run with KVM or TCG.
#
# On a runner host (udevd running): a udev rule opens /dev/kvm to every user,
# which a GitHub-hosted runner needs for its unprivileged user. In a container
# started with `--device /dev/kvm` there is no udevd; root there can open the
# node, so it only gets its mode set. Without /dev/kvm the harness uses TCG.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ! -e /dev/kvm ]; then
    echo "enable-kvm: no /dev/kvm here; VMs will run under TCG (slow: about a minute a boot)" >&2
    exit 0
fi
if command -v udevadm >/dev/null && udevadm control --ping 2>/dev/null; then
    echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' \
        | $SUDO tee /etc/udev/rules.d/99-kvm4all.rules >/dev/null
    $SUDO udevadm control --reload-rules
    $SUDO udevadm trigger --name-match=kvm
else
    $SUDO chmod 0666 /dev/kvm
fi
if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then
    echo "enable-kvm: /dev/kvm is $(stat -c %A /dev/kvm) and the CPU has vmx/svm: VMs will use KVM"
else
    echo "enable-kvm: /dev/kvm exists but the CPU advertises neither vmx nor svm: VMs will use TCG"
fi
