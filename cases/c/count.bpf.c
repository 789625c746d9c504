// SPDX-License-Identifier: GPL-2.0
/* Two counters for getppid(): a kretprobe on its kernel function (attached
 * by name from Python) and a tracepoint (attached where its SEC() says). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

static void count(u32 slot)
{
	u64 *n = bpf_map_lookup_elem(&counts, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("kretprobe")
int count_returns(void *ctx)
{
	count(0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_entries(void *ctx)
{
	count(1);
	return 0;
}
