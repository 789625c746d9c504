#!/bin/sh
# pagecache.sh DIR...: in the guest, mount the N-th 9p share (harnesscacheN) over the N-th DIR,
# read-only and through the page cache; /usr becomes a writable overlay of its cached self, as
# vng's own /usr is. See harness/vm/pagecache.py. A share that is missing (the fake vng) is
# skipped; one that cannot be mounted is said on the console, and that DIR is read uncached.
# Shell builtins where they do: each exec from the uncached root costs 0.1-0.2 s under TCG. The
# guest runs this under busybox's shell where the host has busybox (pagecache.guest_command):
# its mkdir, mount and ln then run without an exec; util-linux's mount maps four libraries.
read -r release < /proc/sys/kernel/osrelease
# msize: 9p before 6.0 gives, as far as we know, each request buffers of the whole msize, whatever
# it holds; 6.x sizes them to the message. A 6.1 guest read bcc's LLVM 2.6 s faster with 512000 than with 65536; a 5.10
# guest was up in 29 s with 16384, 35 s with 65536 and 41 s with 512000 (TCG, 2026-12-08).
case $release in
    [1-5].*) msize=16384 ;;
    *) msize=512000 ;;
esac
OPTIONS=ro,trans=virtio,version=9p2000.L,cache=loose,msize=$msize

share() {  # TAG: is there a 9p share of that name
    for f in /sys/bus/virtio/devices/*/mount_tag; do
        t=
        [ -r "$f" ] && read -r t < "$f"  # the tag ends in a NUL, not a newline: read fails but sets t
        [ "$t" = "$1" ] && return 0
    done
    return 1
}

usr() {  # TAG
    mkdir -p /run/harness-usr/lower /run/harness-usr/upper /run/harness-usr/work &&
        mount -t 9p -o "$OPTIONS" "$1" /run/harness-usr/lower &&
        mount -t overlay -o lowerdir=/run/harness-usr/lower,upperdir=/run/harness-usr/upper,workdir=/run/harness-usr/work harness-usr /usr ||
        return 1
    # vng linked the kernel's modules in /lib/modules, which is /usr/lib/modules on a merged /usr
    # and now hidden: link them again, in the overlay
    [ -e "/lib/modules/$release" ] && return 0
    read -r cmdline < /proc/cmdline
    for arg in $cmdline; do
        case $arg in
            virtme_link_mods=*) mkdir -p /lib/modules && ln -s "${arg#*=}" "/lib/modules/$release" ;;
        esac
    done
}

i=0
for dir in "$@"; do
    tag=harnesscache$i
    i=$((i + 1))
    share "$tag" || continue
    if [ "$dir" = /usr ]; then
        usr "$tag"
    else
        mount -t 9p -o "$OPTIONS" "$tag" "$dir"
    fi || echo "harness-guest: $dir is read without a page cache" >&2
done
exit 0
