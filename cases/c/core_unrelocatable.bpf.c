// SPDX-License-Identifier: GPL-2.0
/* Deliberately unrelocatable: a field no kernel's task_struct has. libbpf
 * matches "task_struct___fake" to task_struct by name and finds no field. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct___fake {
	int no_such_field;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter_getppid")
int unrelocatable(void *ctx)
{
	struct task_struct___fake *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, no_such_field);
}
