"""bench/warm.py's table without VMs: every row, ratio and target verdict from a recorded report."""

from __future__ import annotations

from bench import warm


def _row(seconds: float, up: float | None = None, summary: str = "1 passed in 1.00s") -> dict:
    return {"seconds": seconds, "rc": 0, "summary": summary, "load": [1.0, 1.1], "log": "x.log", "up": up}


def test_table_states_each_target_and_whether_it_was_met():
    report = {
        "when": "2026-11-28T08:40:00+00:00",
        "commit": "abc1234",
        "cpus": 2,
        "rows": {
            "floor": _row(20.0),
            "cold": _row(24.0, 22.0),
            "warm_boot": _row(45.0, 40.0),
            "warm": _row(1.9, 1.2),
            "warm_again": _row(2.5, 1.5),
            "b2_one": _row(2.0),
            "b2_200": {**_row(4.0), "per_test_ms": 30.0},
            "pytest_own": {**_row(80.0), "per_test_ms": 25.0},
            "cold_no_boot_args": _row(26.4, 23.0),
            "suite_cold": {**_row(100.0, summary="155 passed"), "cpu": 380.0},
            "suite_warm_boot": _row(120.0, summary="155 passed"),
            "suite_warm": _row(30.0, summary="155 passed"),
        },
    }
    table = warm.render(report)
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| 1.20 | <= 0.8 | no |" in lines["| cold"]
    assert "**1.90 s**" in lines["| warm, second run"] and lines["| warm, second run"].endswith("| yes |")
    assert lines["| warm, third run"].endswith("| no |")
    assert "**10.1 ms/test**" in lines["| B2"] and lines["| B2"].endswith("| no |")  # 2.0 s / 199
    assert "| 0.30 |" in lines["| suite, --reuse-vm, second"]
    # the suite's target, and the least wall time its CPU time allows on the machine's CPUs
    assert "CPU time of all its processes 380 s, so no less than 190 s on 2 CPUs" in lines["| suite, cold"]
    assert lines["| suite, cold"].endswith("| <= 150 s | yes |")
    assert "**1.20x**" in lines["| B2 against pytest's own"] and lines["| B2 against pytest's own"].endswith(
        "| yes |"
    )
    assert "| 1.10 |" in lines["| cold, without `tsc=reliable cryptomgr.notests` (`--vm-append` undoes them)"]
