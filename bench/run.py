"""Benchmarks of the harness (B1-B5) against their floors; writes a Markdown and a JSON table.

    .venv/bin/python bench/run.py [--quick] [--out bench/results] [--only B4,B5]

B1 boot (bench/boot.py): one trivial test through ``pytest --kernel 6.1``
against the harness's own vng command line running ``true``. B2 per-test
overhead (bench/per_test.py): 200 trivial tests in one VM against the same
bodies in a plain loop in a guest. B3 suite (bench/suite.py): cases/ on two
kernels with ``-n 2`` against the sequential vng loop a user would write and
against a VM per test (extrapolated from a sample). B4 cache (bench/cache.py):
resolving and verifying a cached kernel, with the network cut off. B5 floor
(bench/host.py): cases/ natively on the host kernel.

Every VM the benchmarks boot outside the harness gets its command line and
environment from ``harness.vm.vng``, the launcher's own, so the floors cannot
drift from what the harness does. Each measurement waits for a quiet machine
(bench/measure.py). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `harness` and `bench` from the checkout

from bench import boot, cache, host, per_test, report, suite  # noqa: E402 - needs the path above
from bench.measure import Bench  # noqa: E402

STEPS = "B1,B2,B3,B4,B5,profile,B1x,startup"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, B3 on one kernel")
    ap.add_argument(
        "--kernel",
        default="6.1",
        metavar="SPEC",
        help="the kernel B1 and B2 boot (default 6.1; a built tree for the minimal kernel)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--only", default=STEPS, help="comma-separated subset")
    ap.add_argument(
        "--quiet-limit",
        type=float,
        default=1200.0,
        help="seconds to wait for a quiet machine before each VM measurement",
    )
    args = ap.parse_args(argv)
    from harness import kernels  # noqa: PLC0415

    only = {s.strip().lower() for s in args.only.split(",")}
    out = args.out.resolve()
    machine = report.machine_info()
    images = {
        spec: kernels.resolve(spec, fetch=False, progress=False).image
        for spec in (("6.1",) if args.quick else ("6.1", "6.12"))
    }
    boot_image = kernels.resolve(args.kernel, fetch=False, progress=False).image
    bench = Bench(out, args.quick, args.quiet_limit, args.kernel)
    steps = [
        ("b4", lambda: cache.b4(bench)),
        ("b5", lambda: host.b5(bench)),
        ("profile", lambda: host.host_profile(bench)),
        ("b1", lambda: boot.b1(bench, boot_image)),
        ("b2", lambda: per_test.b2(bench, boot_image)),
        ("b3", lambda: suite.b3(bench, images)),
        ("b3loop", lambda: suite.b3_loops(bench, images)),
        ("b1x", lambda: boot.b1x(bench, boot_image)),
        ("startup", lambda: boot.guest_startup(bench, boot_image)),
    ]
    for name, step in steps:
        if name in only:
            step()
            report.write(bench.report(machine), out)  # a partial table survives a later failure
    md, js = report.write(bench.report(machine), out)
    print(md.read_text())
    print(f"written: {md} {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
