/* Shared by hello.bpf.c and the cases that read its events: keep the sizes in step with the Python side. */
#ifndef HELLO_H
#define HELLO_H

#define MESSAGE_LEN 12

struct user_msg_t {
	char message[MESSAGE_LEN];
};

struct data_t {
	__u32 pid;
	__u32 uid;
	char command[16];
	char path[32];
	char message[MESSAGE_LEN];
};

#endif
