"""pytest-xdist scheduling by kernel: one kernel's tests go to one worker, so each kernel boots once.

A scope is the kernel of the test id (harness.ids)::

    cases/test_maps.py::test_origin_hash_map[6.1.192-3]      -> "6.1.192-3"
    cases/test_verifier.py::test_rejected[r0-6.12.117-1]     -> "6.12.117-1"

With more workers than kernels, each kernel is split into shards
("6.1.192-3#0", "6.1.192-3#1") so that every worker has a VM to run.
"""

from __future__ import annotations

import zlib

from xdist.scheduler import LoadScopeScheduling

from harness import ids


class KernelScheduling(LoadScopeScheduling):
    def __init__(self, config, log=None, *, kernels: list[str], shards: int = 1):
        super().__init__(config, log)
        self.kernels = kernels
        self.shards = shards

    def _split_scope(self, nodeid: str) -> str:
        name = ids.split(nodeid, self.kernels)[1]
        if name is None:
            return nodeid  # a test marked to run on the host: schedule it on its own
        if self.shards == 1:
            return name
        return f"{name}#{zlib.crc32(nodeid.encode()) % self.shards}"
