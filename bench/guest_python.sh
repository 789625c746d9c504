#!/bin/sh
# What the guest's Python start costs, step by step, stamped with the guest's uptime.
# Run it as vng's command, with the zips the harness built (harness.vm.pyzip):
#
#   vng --force-9p --disable-kvm -r IMAGE -m 1G -p 2 -- \
#       bench/guest_python.sh .venv/bin/python ~/.cache/bpf-vm-harness/python/harness-K.zip \
#       ~/.cache/bpf-vm-harness/python/python-K.zip
#
# Prints "step uptime" lines; the differences are the steps' costs (docs/performance.md).
set -e
py=$1 harness_zip=$2 python_zip=$3
libpython=$("$py" -c 'import sysconfig as s; print(s.get_config_var("LIBDIR") + "/" + (s.get_config_var("INSTSONAME") or ""))')
stamp() { echo "$1 $(cut -d' ' -f1 /proc/uptime)"; }
stamp start
cp "$python_zip" /tmp/a.zip; cp "$harness_zip" /tmp/b.zip; stamp zips-copied
"$py" -B -P -c pass; stamp python-pass
"$py" -B -P -S -c pass; stamp python-pass-without-site
if [ -f "$libpython" ]; then
    mkdir -p /tmp/lib; cp "$libpython" /tmp/lib/; stamp libpython-copied
    LD_LIBRARY_PATH=/tmp/lib "$py" -B -P -c pass; stamp python-pass-libpython-in-tmpfs
fi
PYTHONPATH=/tmp/b.zip:/tmp/a.zip "$py" -B -P -c 'import pytest'; stamp import-pytest-zips-in-tmpfs
PYTHONPATH="$harness_zip:$python_zip" "$py" -B -P -c 'import pytest'; stamp import-pytest-zips-over-9p
