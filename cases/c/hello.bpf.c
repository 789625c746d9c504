// SPDX-License-Identifier: GPL-2.0
/* The seed's program: a kprobe "hello" for execve (attached by the test to the
 * kernel's syscall function, e.g. __x64_sys_execve) that reports each exec with a
 * per-user message from the BTF-typed hash map "config" (u32 uid -> 12 bytes). */
/* Recent kernels (6.18 here) have "typedef struct config_s config;", which would
 * take the map's name: rename the typedef while vmlinux.h is read. */
#define config vmlinux_config
#include "vmlinux.h"
#undef config
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "hello.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct user_msg_t);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} output SEC(".maps");

SEC("kprobe")
int BPF_KSYSCALL(hello, const char *pathname)
{
	struct data_t data = {};
	struct user_msg_t *msg;

	data.pid = bpf_get_current_pid_tgid() >> 32;
	data.uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
	bpf_get_current_comm(&data.command, sizeof(data.command));
	bpf_probe_read_user_str(&data.path, sizeof(data.path), pathname);

	msg = bpf_map_lookup_elem(&config, &data.uid);
	if (msg)
		bpf_probe_read_kernel_str(&data.message, sizeof(data.message), msg->message);
	else
		__builtin_memcpy(data.message, "Hello World", MESSAGE_LEN);

	bpf_ringbuf_output(&output, &data, sizeof(data), 0);
	return 0;
}
