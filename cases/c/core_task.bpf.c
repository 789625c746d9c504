// SPDX-License-Identifier: GPL-2.0
/* CO-RE: read task_struct fields whose offsets differ from kernel to kernel.
 * Compiled once against one vmlinux.h; libbpf relocates each access against
 * the BTF of the kernel that loads it. Fires on getppid() of the target tgid.
 * Offsets of task_struct.pid (from each kernel's BTF): 1264 in the host's 6.18
 * that vmlinux.h came from, 2416 in Debian's 6.1, 2432 in 6.12. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct seen {
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 hits;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct seen);
} result SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int core_task(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u32 zero = 0, *want;
	struct seen *out;
	u32 tgid = BPF_CORE_READ(task, tgid);

	want = bpf_map_lookup_elem(&target, &zero);
	if (!want || *want != tgid)
		return 0;
	out = bpf_map_lookup_elem(&result, &zero);
	if (!out)
		return 0;
	out->pid = BPF_CORE_READ(task, pid);
	out->tgid = tgid;
	out->ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&out->comm, task, comm);
	out->hits += 1;
	return 0;
}
