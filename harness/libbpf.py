"""The libbpf binding under its public name: ``from harness import libbpf as L``.

One namespace for what a test needs: the calls (harness.bpf.libbpf), the UAPI
numbers (harness.bpf.uapi) and the feature probes (harness.bpf.probes).
"""

from harness.bpf.libbpf import *  # noqa: F403
from harness.bpf.probes import *  # noqa: F403
from harness.bpf.uapi import *  # noqa: F403
