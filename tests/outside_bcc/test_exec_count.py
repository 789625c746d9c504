"""Counting execs with a kprobe, in the style of bcc's own tests (tests/python/ in bcc)."""

import os
import shutil
import subprocess
import sys
import unittest

from bcc import BPF

PROGRAM = r"""
BPF_HASH(execs, u32, u64);

int count_exec(struct pt_regs *ctx)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    execs.increment(pid);
    return 0;
}
"""


class ExecCountTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        print(f"OUTSIDE-BCC compiling on {os.uname().release}", file=sys.stderr)
        cls.bpf = BPF(text=PROGRAM)
        cls.bpf.attach_kprobe(event=cls.bpf.get_syscall_fnname("execve"), fn_name="count_exec")

    @classmethod
    def tearDownClass(cls):
        cls.bpf.cleanup()

    def test_each_exec_of_a_child_is_counted_once(self):
        true = shutil.which("true")
        children = [subprocess.Popen([true]) for _ in range(3)]
        for child in children:
            self.assertEqual(child.wait(timeout=60), 0)
        counts = {key.value: value.value for key, value in self.bpf["execs"].items()}
        self.assertEqual([counts.get(child.pid) for child in children], [1, 1, 1], counts)

    def test_a_child_that_execs_again_is_counted_twice(self):
        child = subprocess.Popen([shutil.which("sh"), "-c", f"exec {shutil.which('true')}"])
        self.assertEqual(child.wait(timeout=60), 0)
        self.assertEqual(self.bpf["execs"][self.bpf["execs"].Key(child.pid)].value, 2)
