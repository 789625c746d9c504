"""The parts of bench/ that need no VM: B4's measurement, log parsing, the table writer, the vng floor.

They check that the pieces run and produce what the report needs, never how fast.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from bench import boot, cache, logs, measure, report, warm
from harness.vm import vng

CONSOLE = """\
virtme: waiting for virtiofsd to start
virtme-run: failed to start virtiofsd, fallback to 9pProbing EDD (edd=off to disable)... ok
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)
[    2.002638] Run /init as init process
[    2.702749] virtme initramfs: done; switching to real root
[    3.701779] virtme-ng-init: running systemd-tmpfiles
[   10.011909] virtme-ng-init: basic initialization done
[   11.499118] virtme-ng-init: Starting systemd-udevd version 252.39-1~deb12u2
[   11.502377] virtme-ng-init: triggering udev coldplug
[   13.104951] virtme-ng-init: waiting for udev to settle
[   29.995476] virtme-ng-init: udev is done
[   30.014359] virtme-ng-init: starting script
[   66.608718] reboot: Power down
"""


def test_console_marks_and_phases():
    marks = logs.console_marks(CONSOLE)
    assert marks["kernel_start"] == 0.0 and marks["script"] == 30.014359
    phases = logs.boot_phases(marks)
    assert phases["systemd-tmpfiles"] == pytest.approx(6.31)
    assert phases["udev settle (module loads)"] == pytest.approx(16.89)


def test_cold_breakdown_follows_the_boot_then_the_guests_own_marks():
    console = CONSOLE.replace(
        "[   66.608718] reboot: Power down",
        "harness-guest: interpreter up at uptime 33.00 s\nharness-guest: agent started at uptime 36.50 s\n"
        "harness-guest: collected at uptime 40.00 s",
    )
    steps = dict(logs.cold_breakdown(console, wall=45.0))
    assert steps["to basic_init_done"] == pytest.approx(6.31)
    assert steps["to interpreter up"] == pytest.approx(2.99)
    assert steps["to agent started"] == 3.5 and steps["to collected"] == 3.5
    assert list(steps)[-1].startswith("wall outside") and list(steps.values())[-1] == 5.0


def test_pytest_summary_and_counts():
    lines = [(0.1, "collected 3 items"), (2.0, "==== 78 passed, 1 skipped in 3.83s ====")]
    summary = logs.pytest_summary(lines)
    assert summary == "78 passed, 1 skipped in 3.83s"
    assert logs.summary_counts(summary) == {"passed": 78, "skipped": 1}


def test_no_network_refuses_sockets_and_apt():
    with cache.no_network():
        with pytest.raises(cache.NetworkUsed):
            socket.socket()
        with pytest.raises(cache.NetworkUsed):
            subprocess.run(["apt-get", "download", "x"])
        assert subprocess.run(["true"]).returncode == 0
    socket.socket().close()  # restored


def _cached(spec: str) -> bool:
    from harness import kernels

    try:
        kernels.resolve(spec, fetch=False, progress=False)
    except kernels.KernelError:
        return False
    return True


def test_b4_measurements_run(tmp_path):
    if not _cached("6.12"):
        pytest.skip("kernel 6.12 is not cached (python -m harness kernels fetch 6.12)")
    inproc = cache.measure_resolve_in_process("6.12", 2)
    assert len(inproc["times"]) == 2 and inproc["kernel"].startswith("6.12.")
    fresh = cache.measure_resolve_fresh_process("6.12", 1, tmp_path)
    assert fresh["apt_called"] == "" and len(fresh["times"]) == 1


def test_table_writer(tmp_path):
    machine = {
        "cpu_model": "cpu",
        "cpus": 2,
        "memory": "1 kB",
        "accel": "tcg",
        "accel_reason": "forced",
        "host_kernel": "6.18",
        "python": "3.11",
        "qemu": "QEMU 7.2",
        "vng": "1.42",
        "kernels": {"6.1": {"name": "6.1.192", "release": "6.1.0-56-amd64"}},
        "git_commit": "abc",
        "date": "today",
        "load_at_start": [0.1, 0.2, 0.3],
    }
    bench = measure.Bench(tmp_path, quick=True, quiet_limit=0)
    bench.measurements["x"] = {"load_before": [0.5, 0, 0], "quiet": True, "lines": [], "max_qemu_during": 2}
    bench.row(
        "B1",
        "boot",
        20.0,
        "s",
        baseline=18.0,
        baseline_what="vng",
        ratio=20 / 18,
        target="ratio <= 1.15",
        met=True,
        labels=("x",),
    )
    bench.breakdown["B1 harness"] = {"udev settle": 16.9, "lines": ["a", "b"]}
    md, js = report.write(bench.report(machine), tmp_path / "out")
    text = md.read_text()
    assert "| B1 | boot | 20.00 s | 18.00 s (vng) | 1.11 | ratio <= 1.15 | yes | 1 | 0.50 | 2 |" in text
    assert "- udev settle: 16.90" in text
    data = json.loads(js.read_text())
    assert data["rows"][0]["met"] is True and "lines" not in data["measurements"]["x"]


def test_timed_run_stamps_a_line_when_its_text_arrived(tmp_path):
    # like pytest -v: the result is printed, the newline only comes with the next output
    r = measure.timed_run(["sh", "-c", "printf 'x PASSED'; sleep 0.5; printf '\\nnext\\n'"], tmp_path / "log")
    (t1, first), (t2, second) = r["lines"]
    assert (first, second) == ("x PASSED", "next") and r["rc"] == 0
    assert t2 - t1 >= 0.4
    assert (tmp_path / "log").read_text().startswith("# sh -c")


def test_the_vng_floor_is_the_launchers_boot_running_true(tmp_path, monkeypatch):
    """bench boots the floor with harness.vm.vng, so it cannot drift from the harness's own boot."""
    from harness.vm.launcher import VM
    from harness.vm.seam import VMConfig

    monkeypatch.setenv("HARNESS_VNG", "/bin/echo")  # prints the command line it was given
    bench = measure.Bench(tmp_path, quick=True, quiet_limit=0)
    image = tmp_path / "bzImage"

    class Kernel:
        name = "k"

    Kernel.image = image
    cfg = VMConfig(accel="kvm" if bench.kvm else "tcg", log_dir=tmp_path / "logs")
    vm = VM(Kernel, cfg, measure.REPO)
    harness = vm.command()
    floor = bench.vng("floor", image, ["true"])
    assert floor["lines"][0][1] == " ".join([*harness[1:-1], "true"])
    assert harness[-2] == "--" and "harness.guest" in vm.guest_script.read_text()
    bare = bench.vng("bare", image, ["true"], **boot.EXPERIMENTS[0][2])
    assert "--verbose" not in bare["lines"][0][1] and vng.APPEND[0] not in bare["lines"][0][1]
    assert "harnesscache" not in bare["lines"][0][1]


def test_warm_rows_taken_in_turn_report_their_median_and_every_sample():
    samples = [{"seconds": 31.0, "run": 0}, {"seconds": 22.5, "run": 1}, {"seconds": 25.0, "run": 2}]
    row = warm.median(samples)
    assert (row["seconds"], row["run"], row["samples"]) == (25.0, 2, [31.0, 22.5, 25.0])
    assert "median of 31.0, 22.5, 25.0 s" in warm._of(row)
    assert warm._of({"seconds": 3.0}) == ""  # a row run once says nothing more
