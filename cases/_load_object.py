"""Child process for test_c_programs.py: open and load one compiled object, print its fds, exit.

    python -B cases/_load_object.py OBJECT.bpf.o

Run under ``strace -e trace=bpf`` so the test sees the bpf() calls libbpf makes.
"""

from __future__ import annotations

import json
import sys

from harness.bpf.object import BPFObject

if __name__ == "__main__":
    with BPFObject.open_file(sys.argv[1]) as obj:
        obj.load()
        fds = {**{p.name: p.fd for p in obj.programs}, **{m.name: m.fd for m in obj.maps}}
        print(json.dumps(fds), flush=True)
