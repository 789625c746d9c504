"""Time to first result (issue 12): cold and warm runs against bare virtme-ng, in one run, one table.

    .venv/bin/python bench/warm.py [--out bench/results-warm] [--skip-suite]

Rows, each beside its baseline, measured one after the other on this machine:

- floor: ``vng --disable-kvm -r IMAGE -m 1G -p 2 -- true`` (a user without the harness);
- cold: ``pytest --kernel 6.1 bench/case_one.py``; target <= 0.8x the floor. The floor and the
  cold run are taken in turn three times (``PAIRS``); each row is the median of its three;
- warm: the second ``pytest --kernel 6.1 --reuse-vm bench/case_one.py`` (the first boots the
  VM); target <= 2 s wall, host pytest start-up included;
- B2: per-test overhead in the warm VM, (200 trivial tests - 1 trivial test) / 199; target <= 10 ms;
  and its cadence (bench/cadence.py) against plain pytest's in a booted guest; target <= 1.5x;
- the cold row again with each boot cut undone: ``--vm-full-init``, ``HARNESS_PVH=0``, the boot
  arguments (``vng.WITHOUT_BOOT_ARGS``), the page-cache shares (``HARNESS_PAGE_CACHE=0``);
- suite: ``pytest --kernel S1 --kernel S2 ... -n 2 cases/``, every Debian series of the catalog,
  cold and then warm (the second run with --reuse-vm).

Warm VMs live in a private state directory and are stopped at the end. Other
sessions share the machine: the load average before and after each row is
recorded; timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PY = sys.executable

from bench import logs  # noqa: E402


def debian_series() -> list[str]:
    """Every Debian series of the catalog, oldest first (the suite rows boot each)."""
    from packaging.version import Version

    from harness.kernels.catalog import load_catalog

    return sorted({e.series for e in load_catalog().entries if e.source == "debian"}, key=Version)


def load() -> float:
    return os.getloadavg()[0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict, log: Path) -> dict:
    """Wall time, and the CPU time of every process the command ran and waited for (pytest, its
    workers, vng, QEMU, clang): on N CPUs no schedule runs it in less than cpu / N seconds."""
    before = load()
    cpu = _children_cpu()
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    cpu = _children_cpu() - cpu
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    return {
        "seconds": round(seconds, 2),
        "cpu": round(cpu, 1),
        "rc": proc.returncode,
        "summary": summary,
        "load": [round(before, 2), round(load(), 2)],
        "log": str(log),
        "up": _up(proc.stdout),
    }


# The floor and the cold run, taken in turn this many times: one sample of either is within this
# machine's noise (the floor moved 21-37 s over one day, and up to 8 s between two runs of an hour)
PAIRS = 3


def median(samples: list[dict]) -> dict:
    """The median sample by wall time, with every sample's wall time beside it."""
    middle = sorted(samples, key=lambda sample: sample["seconds"])[len(samples) // 2]
    return {**middle, "samples": [sample["seconds"] for sample in samples]}


def _up(out: str) -> float | None:
    """The harness's own "up in X s" (time to Ready), if it said it."""
    found = re.findall(r" up in ([\d.]+) s", out)
    return float(found[-1]) if found else None


# Plain pytest inside one booted guest, without the harness, twice (the first run pays for the
# cold 9p cache): the time between consecutive tests' ends (bench/cadence.py), pytest's own cost
# per test there. The harness's B2 cadence is measured the same way, on the host.
OWN_SCRIPT = "{pytest} >/dev/null; {pytest} >/dev/null"
CADENCE = ["-p", "bench.cadence"]


def cadence(log: Path) -> float | None:
    """The last per-test cadence (ms) bench/cadence.py printed into a log."""
    found = re.findall(r"CADENCE ([\d.]+) \d+", log.read_text())
    return float(found[-1]) if found else None


def pytest_in_guest(image: Path, home: str, env: dict, log: Path) -> dict:
    from harness.vm import pagecache, vng

    plain = [PY, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:bpf_vm_harness", *CADENCE]
    cached = pagecache.dirs(image)  # the same guest as the harness's: the same trees cached
    script = pagecache.guest_command(cached) + OWN_SCRIPT.format(
        pytest=shlex.join([*plain, "bench/cases_trivial.py"])
    )
    cmd = vng.command(image, REPO, script, verbose=False, cached=cached)
    row = timed(cmd, vng.environment(home, cmd[0], env), log)
    row["per_test_ms"] = cadence(log)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results-warm")
    parser.add_argument("--skip-suite", action="store_true", help="leave out the cases/ rows")
    args = parser.parse_args(argv)
    from harness.kernels import resolve
    from harness.vm import vng

    args.out.mkdir(parents=True, exist_ok=True)
    state = tempfile.mkdtemp(prefix="hvm-bench-")
    env = {**os.environ, "HARNESS_VM_STATE_DIR": state}
    image = resolve("6.1", fetch=False, progress=False).image
    pytest = [PY, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    rows: dict[str, dict] = {}
    report_series: list[str] = []

    def res(name: str) -> list[str]:
        return ["--results-dir", str(Path(state) / "results" / name)]

    try:
        floors, colds = [], []
        for run in range(PAIRS):
            with tempfile.TemporaryDirectory() as home:
                bare_vng = str(Path(PY).parent / "vng")
                # a user's shell in the activated virtualenv: vng runs virtme-run from PATH
                floor_env = {
                    **env,
                    "HOME": home,
                    "PATH": f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}",
                }
                cmd = [bare_vng, "--disable-kvm", "-r", str(image), "-m", "1G", "-p", "2", "--", "true"]
                floors.append(timed(cmd, floor_env, args.out / f"floor-{run}.log"))
            cold = [*pytest, "--kernel", "6.1", *res(f"cold{run}"), "bench/case_one.py"]
            colds.append({**timed(cold, env, args.out / f"cold-{run}.log"), "run": run})
        rows["floor"], rows["cold"] = median(floors), median(colds)
        # each boot cut on its own (docs/performance.md): the cold run without it
        rows["cold_full_init"] = timed(
            [*pytest, "--kernel", "6.1", "--vm-full-init", *res("cfi"), "bench/case_one.py"],
            env,
            args.out / "cold-full-init.log",
        )
        rows["cold_no_boot_args"] = timed(
            [*pytest, "--kernel", "6.1", *[f"--vm-append={arg}" for arg in vng.WITHOUT_BOOT_ARGS]]
            + [*res("cnb"), "bench/case_one.py"],
            env,
            args.out / "cold-no-boot-args.log",
        )
        rows["cold_no_pvh"] = timed(
            [*pytest, "--kernel", "6.1", *res("cnp"), "bench/case_one.py"],
            {**env, "HARNESS_PVH": "0"},
            args.out / "cold-no-pvh.log",
        )
        rows["cold_no_page_cache"] = timed(
            [*pytest, "--kernel", "6.1", *res("cnc"), "bench/case_one.py"],
            {**env, "HARNESS_PAGE_CACHE": "0"},
            args.out / "cold-no-page-cache.log",
        )
        with tempfile.TemporaryDirectory() as home:
            rows["pytest_own"] = pytest_in_guest(image, home, env, args.out / "pytest-own.log")
        cold_run = Path(state) / "results" / f"cold{rows['cold']['run']}"  # the median one
        consoles = sorted((cold_run / "vm-logs").glob("*.console.log"))
        if consoles:
            shutil.copy(consoles[0], args.out / "cold.console.log")
            rows["cold"]["breakdown"] = logs.cold_breakdown(consoles[0].read_text(), rows["cold"]["seconds"])
        warm = [*pytest, "--kernel", "6.1", "--reuse-vm"]
        rows["warm_boot"] = timed([*warm, *res("w1"), "bench/case_one.py"], env, args.out / "warm-boot.log")
        rows["warm"] = timed([*warm, *res("w2"), "bench/case_one.py"], env, args.out / "warm.log")
        rows["warm_again"] = timed([*warm, *res("w3"), "bench/case_one.py"], env, args.out / "warm-again.log")
        rows["b2_one"] = timed(
            [*warm, *res("b2one"), "bench/cases_trivial.py::test_trivial[0]"], env, args.out / "b2-one.log"
        )
        rows["b2_200"] = timed(
            [*warm, *CADENCE, *res("b2all"), "bench/cases_trivial.py"], env, args.out / "b2-200.log"
        )
        rows["b2_200"]["per_test_ms"] = cadence(args.out / "b2-200.log")
        if not args.skip_suite:
            series = debian_series()
            report_series = series
            kernels = [arg for one in series for arg in ("--kernel", one)]
            suite = [*pytest, *kernels, "-n", "2", "cases/"]
            rows["suite_cold"] = timed([*suite, *res("sc")], env, args.out / "suite-cold.log")
            rows["suite_warm_boot"] = timed(
                [*suite, "--reuse-vm", *res("sw1")], env, args.out / "suite-warm-boot.log"
            )
            rows["suite_warm"] = timed([*suite, "--reuse-vm", *res("sw2")], env, args.out / "suite-warm.log")
    finally:
        subprocess.run([PY, "-m", "harness", "vm", "stop", "--all"], env=env, cwd=REPO, check=False)
        shutil.rmtree(state, ignore_errors=True)  # the VMs' consoles; the pytest outputs are in --out
    report = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "rows": rows,
        "series": report_series,
    }
    (args.out / "warm.json").write_text(json.dumps(report, indent=1))
    table = render(report)
    (args.out / "warm.md").write_text(table)
    print(table)
    return 0


def _of(row: dict) -> str:
    """Where a row is the median of runs taken in turn with the floor's: all of them."""
    samples = row.get("samples")
    if not samples:
        return ""
    return f"(median of {', '.join(f'{s:.1f}' for s in samples)} s, each taken in turn with the other row's)"


def render(report: dict) -> str:
    r = report["rows"]
    floor = r["floor"]["seconds"]
    b2 = (r["b2_200"]["seconds"] - r["b2_one"]["seconds"]) / 199 * 1000
    lines = [
        f"Measured {report['when']}, commit {report['commit']}, {report['cpus']} CPUs, TCG. "
        "Load averages before/after each row in brackets.",
        "",
        "| row | what | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
        f"| floor | `vng --disable-kvm -r IMAGE -m 1G -p 2 -- true` | {floor:.1f} s {_of(r['floor'])} "
        f"{r['floor']['load']} | | | | |",
        f"| cold | `pytest --kernel 6.1 bench/case_one.py` | {r['cold']['seconds']:.1f} s {_of(r['cold'])} "
        f"(to Ready {r['cold']['up']} s) {r['cold']['load']} | floor {floor:.1f} s | "
        f"{r['cold']['seconds'] / floor:.2f} | <= 0.8 | {'yes' if r['cold']['seconds'] <= 0.8 * floor else 'no'} |",
        f"| warm, first run | the same with `--reuse-vm` (boots the VM) | {r['warm_boot']['seconds']:.1f} s "
        f"{r['warm_boot']['load']} | cold {r['cold']['seconds']:.1f} s | "
        f"{r['warm_boot']['seconds'] / r['cold']['seconds']:.2f} | | |",
    ]
    for key, label in (("warm", "warm, second run"), ("warm_again", "warm, third run")):
        s = r[key]["seconds"]
        lines.append(
            f"| {label} | `pytest --kernel 6.1 --reuse-vm bench/case_one.py` | **{s:.2f} s** "
            f"(to Ready {r[key]['up']} s) {r[key]['load']} | floor {floor:.1f} s | {s / floor:.3f} | "
            f"<= 2 s | {'yes' if s <= 2 else 'no'} |"
        )
    lines.append(
        f"| B2 | warm VM: (200 trivial tests {r['b2_200']['seconds']:.2f} s - 1 test "
        f"{r['b2_one']['seconds']:.2f} s) / 199 | **{b2:.1f} ms/test** | | | <= 10 ms | "
        f"{'yes' if b2 <= 10 else 'no'} |"
    )
    for key, label in (
        ("cold_full_init", "cold, virtme-ng's whole init (`--vm-full-init`: no init shims)"),
        ("cold_no_pvh", "cold, bzImage as vng boots it (`HARNESS_PVH=0`: no PVH vmlinux)"),
        ("cold_no_boot_args", "cold, without `tsc=reliable cryptomgr.notests` (`--vm-append` undoes them)"),
        (
            "cold_no_page_cache",
            "cold, the whole root uncached (`HARNESS_PAGE_CACHE=0`: no page-cache shares)",
        ),
    ):
        if key in r:
            s = r[key]["seconds"]
            lines.append(
                f"| {label} | the cold row, one cut off | {s:.1f} s (to Ready {r[key]['up']} s) {r[key]['load']} "
                f"| cold {r['cold']['seconds']:.1f} s | {s / r['cold']['seconds']:.2f} | | |"
            )
    own = r.get("pytest_own", {}).get("per_test_ms")
    ours = r["b2_200"].get("per_test_ms")
    if own and ours:
        lines.append(
            f"| B2 against pytest's own | time between tests' ends over 200 trivial tests (bench/cadence.py): "
            f"the harness, warm VM, {ours:.1f} ms; plain `python -m pytest` in a booted guest, {own:.1f} ms "
            f"| **{ours / own:.2f}x** | | | <= 1.5x | {'yes' if ours <= 1.5 * own else 'no'} |"
        )
    if r["cold"].get("breakdown"):
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["cold"]["breakdown"])
        lines.append(f"| cold, where it goes | {steps} | | | | | |")
    if "suite_cold" in r:
        cold = r["suite_cold"]["seconds"]
        kernels = " ".join(f"--kernel {one}" for one in report.get("series", ["6.1", "6.12"]))
        for key, label in (
            ("suite_cold", "cold"),
            ("suite_warm_boot", "--reuse-vm, first"),
            ("suite_warm", "--reuse-vm, second"),
        ):
            # a warm VM's QEMU is not the run's child: only the cold run's CPU time is whole
            cpu = r[key].get("cpu") if key == "suite_cold" else None
            bound = (
                f"; CPU time of all its processes {cpu:.0f} s, so no less than {cpu / report['cpus']:.0f} s "
                f"on {report['cpus']} CPUs"
                if cpu is not None
                else ""
            )
            lines.append(
                f"| suite, {label} | `pytest {kernels} -n 2 cases/`: "
                f"{r[key]['summary']}{bound} | {r[key]['seconds']:.1f} s {r[key]['load']} | cold {cold:.1f} s | "
                f"{r[key]['seconds'] / cold:.2f} | {'<= 150 s' if key == 'suite_cold' else ''} | "
                f"{('yes' if cold <= 150 else 'no') if key == 'suite_cold' else ''} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
