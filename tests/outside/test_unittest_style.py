"""The style of the kernel's BPF selftests and bcc's tests: unittest, shelling out to bpftool."""

import json
import subprocess
import unittest

from kernelcheck import running_release


class BpftoolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.release = running_release("setUpClass")

    @classmethod
    def tearDownClass(cls):
        running_release("tearDownClass")

    def test_feature_probe(self):
        out = subprocess.run(
            ["bpftool", "-j", "feature", "probe", "kernel"], capture_output=True, text=True, check=True
        ).stdout
        self.assertTrue(json.loads(out)["map_types"]["have_hash_map_type"])
        self.assertEqual(running_release("test_feature_probe"), self.release)

    def test_same_kernel_as_setup(self):
        self.assertEqual(running_release("test_same_kernel_as_setup"), self.release)
