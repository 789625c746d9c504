// SPDX-License-Identifier: GPL-2.0
/* Needs task_struct::saved_state, which every kernel has only since 6.6
 * (before, only PREEMPT_RT builds had it): on 5.10 and 6.1 libbpf must
 * refuse to load this with its CO-RE relocation message. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} state SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int new_field(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u32 zero = 0, value = BPF_CORE_READ(task, saved_state);

	bpf_map_update_elem(&state, &zero, &value, BPF_ANY);
	return 0;
}
