"""pytest-xdist scheduling by kernel: one kernel's tests go to one worker, so each kernel boots once.

A scope is the kernel of the test id::

    cases/test_maps.py::test_origin_hash_map[6.1.192]      -> "6.1.192"
    cases/test_verifier.py::test_rejected[r0-6.12.117]     -> "6.12.117"

With more workers than kernels, each kernel is split into shards
("6.1.192#0", "6.1.192#1") so that every worker has a VM to run.
"""

from __future__ import annotations

import zlib

from xdist.scheduler import LoadScopeScheduling


class KernelScheduling(LoadScopeScheduling):
    def __init__(self, config, log=None, *, kernels: list[str], shards: int = 1):
        super().__init__(config, log)
        # longest first: "6.1.192-1" must win over "6.1.192"
        self.kernels = sorted(kernels, key=len, reverse=True)
        self.shards = shards

    def _split_scope(self, nodeid: str) -> str:
        params = nodeid[nodeid.rfind("[") + 1:-1] if nodeid.endswith("]") else ""
        for name in self.kernels:
            if params == name or params.endswith(f"-{name}") or params.startswith(f"{name}-") \
                    or f"-{name}-" in params:
                if self.shards == 1:
                    return name
                return f"{name}#{zlib.crc32(nodeid.encode()) % self.shards}"
        return nodeid  # not a VM test: schedule it on its own
