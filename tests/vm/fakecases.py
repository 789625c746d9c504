"""Guest-side cases for tests/vm/test_loop_fake.py: each makes the fake VM (tests/vm/fakevng.py) behave one way.

Not collected by ``pytest tests/`` (the name does not match test_*.py); the
loop tests run it explicitly with ``--kernel`` through the fake vng, which
sets FAKEVNG_PID. Only there do the cases that end the "VM" make sense.
"""

import os
import signal
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def broken_fixture():
    raise RuntimeError("the fixture broke")


def test_passes(bpf_kernel):
    # in a VM, the fixture carries the kernel's name from the host
    (Path(os.environ["HARNESS_RESULTS_DIR"]) / f"artifact-{bpf_kernel}.txt").write_text(
        "written in the guest"
    )


def test_fails():
    answer = 6 * 7
    print("output of the failing test")
    assert answer == 43


def test_skips():
    pytest.skip("not on this kernel")


def test_setup_errors(broken_fixture):
    pass


def test_prints_noise():
    # stray output, even protocol-shaped, goes to the console, never onto the channel
    os.write(1, b'{"type": "Done", "v": 2, "nodeid": "x", "reports": []}\n')
    print("noise " * 2000)
    sys.stdout.flush()


def test_kills_vm():
    os.kill(int(os.environ["FAKEVNG_PID"]), signal.SIGKILL)  # QEMU dies; the guest goes with it
    time.sleep(30)


def test_hangs():
    time.sleep(60)


def test_after(bpf_kernel):
    assert bpf_kernel


def _channel_out(config):
    """The guest agent's end of the protocol channel (where no test can write by accident)."""
    agent = next(p for p in config.pluginmanager.get_plugins() if hasattr(p, "channel"))
    return agent.channel._out


def test_sends_other_version(request):
    out = _channel_out(request.config)
    out.write(b'{"type": "Done", "v": 1, "nodeid": "x", "reports": []}\n')
    out.flush()


def test_sends_garbage(request):
    out = _channel_out(request.config)
    out.write(b"garbage on the channel\n")
    out.flush()
