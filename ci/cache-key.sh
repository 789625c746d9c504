#!/usr/bin/env bash
# The kernel cache's key for one kernel: the kernel and a hash of the catalog(s)
# in use, so a catalog change (a re-pinned package) never reuses an old image.
#
#   ci/cache-key.sh 6.12.117-1      # -> bpf-kernel-6.12.117-1-<16 hex digits of sha256>
# Also appends key=... to $GITHUB_OUTPUT when that is set.
set -euo pipefail
kernel=${1:?usage: ci/cache-key.sh KERNEL}
harness=$(cd "$(dirname "$0")/.." && pwd)
catalogs=("$harness/kernels/catalog.toml")
[ -z "${HARNESS_CATALOG:-}" ] || catalogs+=("$HARNESS_CATALOG")
digest=$(cat "${catalogs[@]}" | sha256sum | cut -c1-16)
key="bpf-kernel-$kernel-$digest"
echo "$key"
[ -z "${GITHUB_OUTPUT:-}" ] || echo "key=$key" >>"$GITHUB_OUTPUT"
