// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken C: clang must refuse it, and the test must show why. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_getppid")
int broken(void *ctx)
{
	return undeclared_variable + 1;
}
