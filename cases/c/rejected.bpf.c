// SPDX-License-Identifier: GPL-2.0
/* Compiles, but the verifier must reject it: a map value used without the NULL check. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int rejected(void *ctx)
{
	u32 key = 0;
	u64 *value = bpf_map_lookup_elem(&counts, &key);

	*value += 1; /* no "if (!value) return 0;" */
	return 0;
}
