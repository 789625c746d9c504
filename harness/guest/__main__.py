"""``python -m harness.guest``: the guest's entry point, one pytest session or a fork server.

The first message decides: ``Serve`` makes a warm VM's fork server
(harness.guest.forkserver), anything else is the ``Start`` of one session
(harness.guest.agent).
"""

import sys

with open("/proc/uptime") as _f:  # on the console: how long the interpreter took to get here
    print(f"harness-guest: interpreter up at uptime {_f.read().split()[0]} s", file=sys.stderr, flush=True)

import os  # noqa: E402
import traceback  # noqa: E402

from harness import protocol  # noqa: E402
from harness.guest import agent  # noqa: E402


def main() -> int:
    sys.path.insert(
        0, os.getcwd()
    )  # the tests' directory first, as `python -m pytest` has it (vng.guest_command)
    channel = agent.Channel()
    agent.mark("agent started")
    try:
        agent.prepare()
        first = channel.receive()
        if isinstance(first, protocol.Serve):  # a warm VM (--reuse-vm)
            from harness.guest import forkserver  # noqa: PLC0415 - only a warm VM needs it

            return forkserver.serve(channel, first)
        return agent.session(channel, first)
    except BaseException:  # noqa: BLE001 - report anything to the host, then die
        channel.send(protocol.Fatal(traceback.format_exc()))
        return 3


if __name__ == "__main__":
    sys.exit(main())
