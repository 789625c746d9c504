// SPDX-License-Identifier: GPL-2.0
/* For tests/bpf/test_object.py: a cgroup program to link and pin, a raw tracepoint that counts. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} hits SEC(".maps");

SEC("cgroup_skb/egress")
int allow_egress(struct __sk_buff *skb)
{
	return 1;
}

SEC("raw_tracepoint/sys_enter")
int count_syscalls(void *ctx)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&hits, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}
