"""report merge/compare on real saved runs (tests/data/runs, from tests/data/make_fixtures.py), and the HTML page in headless Chromium."""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from harness.report import matrix, records

ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(__file__).parents[1] / "data" / "runs"
SINGLE = [RUNS / "run-6.1.json", RUNS / "run-6.12.json"]
BOTH = RUNS / "run-both.json"
# a real run of `--kernel 6.1` from when the catalog named the 6.1.192-2 build "6.1.192"
OLDER_NAMES = RUNS / "run-6.1-older-names.json"
K61, K612 = "6.1.192-3", "6.12.117-1"  # what --kernel 6.1 and --kernel 6.12 resolved to


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "report", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _provenance(m: matrix.Matrix) -> list[tuple]:
    return [(k.name, k.release, k.version, k.source, k.sha256, k.package, k.accel) for k in m.kernels]


def test_saved_runs_are_real_and_complete():
    for path in [*SINGLE, BOTH]:
        run = records.load(path)
        assert run.complete and run.meta.mode == "vm", path
        assert all(k.boot_seconds and k.accel in ("kvm", "tcg") and k.version for k in run.kernels)
    assert [k.name for k in records.load(BOTH).kernels] == [K61, K612]
    # exact names everywhere: kernel records, ids, reproduce lines
    for run in (records.load(BOTH), *map(records.load, SINGLE)):
        assert all(k.spec == k.name for k in run.kernels)
        for c in run.cases:
            assert c.kernel in (K61, K612) and c.nodeid.endswith(f"{c.kernel}]")
            assert c.reproduce is None or c.reproduce.startswith(f"pytest --kernel {c.kernel} ")


def test_two_single_kernel_runs_merge_to_the_two_kernel_run():
    apart = matrix.merge([records.load(p) for p in SINGLE])
    together = matrix.merge([records.load(BOTH)])
    assert apart.grid() == together.grid()
    assert apart.cases == together.cases and len(apart.cases) > 30
    assert _provenance(apart) == _provenance(together)
    assert not apart.warnings
    # the demo differs by kernel, and the gated map type is skipped on 6.1 only
    grid = together.grid()
    assert grid["tests/data/reportcases/demo_cases.py::test_fails_on_6_12_only"] == {
        K61: "passed",
        K612: "failed",
    }
    assert grid["cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd"] == {
        K61: "skipped",
        K612: "passed",
    }


def test_merge_order_does_not_matter():
    a = matrix.merge([records.load(p) for p in SINGLE])
    b = matrix.merge([records.load(p) for p in reversed(SINGLE)])
    assert a.grid() == b.grid() and [k.name for k in a.kernels] == [k.name for k in b.kernels]


def test_every_failing_cell_carries_its_reproduce_line(tmp_path):
    m = matrix.merge([records.load(BOTH)])
    failures = m.failures()
    assert {(f.case.rsplit("::", 1)[1], f.kernel) for f in failures} >= {
        ("test_fails_on_6_12_only", K612),
        ("test_verifier_rejects_missing_r0", K61),
    }
    for f in failures:
        assert f.reproduce == f"pytest --kernel {f.kernel} '{f.nodeid}'"
    bpf = next(f for f in failures if "missing_r0" in f.case)
    assert bpf.errno == "EACCES" and "R0 !read_ok" in bpf.verifier_log
    md, page = matrix.render_markdown(m), matrix.render_html(m)
    for f in failures:
        assert f"`{f.reproduce}`" in md
        assert f.reproduce.replace("'", "&#x27;") in page


def test_merge_cli_writes_markdown_html_and_json(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    r = _cli(
        "merge",
        *SINGLE,
        "--markdown",
        summary,
        "--html",
        tmp_path / "m.html",
        "--json",
        tmp_path / "merged.json",
    )
    assert r.returncode == 0, r.stderr
    assert f"reproduce: pytest --kernel {K612} " in r.stdout
    md = summary.read_text()
    assert md.startswith("earlier step\n## BPF cases x kernels")  # appended, as the step summary wants
    assert f"| case | {K61} | {K612} |" in md and "❌" in md and "✅" in md
    merged = records.load(tmp_path / "merged.json")
    assert matrix.merge([merged]).grid() == matrix.merge([records.load(BOTH)]).grid()
    page = (tmp_path / "m.html").read_text()
    assert "<details>" in page and "<style>" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page  # self-contained
    assert records.load(BOTH).kernels[1].sha256 in page


def test_merge_fail_on_failures_exit_status(tmp_path):
    assert _cli("merge", BOTH, "--fail-on-failures").returncode == 1
    passing = records.load(BOTH)
    passing.cases = [c for c in passing.cases if c.outcome not in matrix.FAILING]
    records.dump(passing, tmp_path / "ok.json")
    assert _cli("merge", tmp_path / "ok.json", "--fail-on-failures").returncode == 0


def _inject_regression(tmp_path: Path) -> tuple[Path, str]:
    run = records.load(BOTH)
    victim = next(c for c in run.cases if c.outcome == "passed" and c.kernel == K61)
    victim.outcome, victim.message = "failed", "injected"
    victim.reproduce = records.reproduce_line(victim.nodeid, victim.kernel)
    run.cases.append(
        dataclasses.replace(
            run.cases[0], case="cases/test_new.py::test_new", nodeid=f"cases/test_new.py::test_new[{K61}]"
        )
    )
    path = tmp_path / "current.json"
    records.dump(run, path)
    return path, victim.case


def test_compare_flags_an_injected_regression(tmp_path):
    current, case = _inject_regression(tmp_path)
    r = _cli("compare", BOTH, current)
    assert r.returncode == 1, r.stdout
    assert f"REGRESSIONS (1):\n  {case} on {K61}: passed -> failed" in r.stdout
    assert f"reproduce: pytest --kernel {K61} " in r.stdout
    assert "new (1):" in r.stdout
    back = _cli("compare", current, BOTH)  # the other way round it is a fix
    assert back.returncode == 0 and "fixed (1):" in back.stdout and "removed (1):" in back.stdout


def test_compare_same_run_and_merged_singles_has_no_differences():
    r = _cli("compare", BOTH, *SINGLE)
    assert r.returncode == 0 and "no differences" in r.stdout


def test_merge_baseline_flag_fails_on_regression(tmp_path):
    current, case = _inject_regression(tmp_path)
    md = tmp_path / "s.md"
    r = _cli("merge", current, "--baseline", BOTH, "--markdown", md)
    assert r.returncode == 1
    assert "1 regression(s)" in md.read_text() and case in md.read_text()
    assert _cli("merge", *SINGLE, "--baseline", BOTH).returncode == 0


def test_incomplete_runs_are_refused_unless_allowed(tmp_path):
    run = records.load(BOTH)
    run.complete = False
    path = tmp_path / "partial.json"
    records.dump(run, path)
    r = _cli("merge", path)
    assert r.returncode == 2 and "did not finish" in r.stderr and "--allow-incomplete" in r.stderr
    r = _cli("merge", path, "--allow-incomplete", "--markdown", tmp_path / "s.md")
    assert r.returncode == 0 and "did not finish" in (tmp_path / "s.md").read_text()


def test_conflicting_cells_show_the_worse_outcome_with_a_warning():
    a, b = records.load(BOTH), records.load(BOTH)
    cell = next(c for c in b.cases if c.outcome == "passed")
    cell.outcome = "vm-lost"
    m = matrix.merge([a, b])
    assert m.outcome(cell.case, cell.kernel) == "vm-lost"
    assert any("passed in one run, vm-lost in another" in w for w in m.warnings)


def test_kernel_order_is_by_version_across_series():
    names = ["6.12.107-1", "6.1.192-3", "6.1.192-1", "6.1.170-3", "6.13", "6.6", "6.12.107-1.deb12u1"]
    assert sorted(names, key=matrix.kernel_order) == [
        "6.1.170-3",
        "6.1.192-1",
        "6.1.192-3",
        "6.6",
        "6.12.107-1.deb12u1",
        "6.12.107-1",
        "6.13",
    ]


# -- baselines recorded under an older catalog's names --------------------------


def test_a_baseline_of_an_older_name_for_another_build_is_not_compared_as_the_same_kernel():
    """ "6.1.192" was the -2 build when that run was recorded; today's 6.1.192-3 is another image."""
    old, new = records.load(OLDER_NAMES), records.load(RUNS / "run-6.1.json")
    assert [k.name for k in old.kernels] == ["6.1.192"] and old.kernels[0].release == "6.1.0-56-amd64"
    assert new.kernels[0].release == "6.1.0-57-amd64" and new.kernels[0].sha256 != old.kernels[0].sha256
    diff = matrix.compare(matrix.merge([old]), matrix.merge([new]))
    assert diff.renamed == {} and not diff.regressions and not diff.fixes
    assert {ch.kernel for ch in diff.removed} == {"6.1.192"} and {ch.kernel for ch in diff.new} == {K61}
    assert len(diff.removed) == len(old.cases) and len(diff.new) == len(new.cases)


def test_a_baseline_of_an_older_name_for_the_same_image_compares_under_the_exact_name(tmp_path):
    """A baseline whose kernel an older catalog called "6.1.192" when it was the -3 build (the same
    image, by sha256) is compared cell by cell against 6.1.192-3, and a regression shows on it."""
    baseline = records.load(RUNS / "run-6.1.json")
    old_name = K61.split("-")[0]
    for k in baseline.kernels:
        k.name = k.spec = old_name
    for c in baseline.cases:
        c.kernel, c.nodeid = (
            old_name,
            c.nodeid.replace(f"[{K61}]", f"[{old_name}]").replace(f"-{K61}]", f"-{old_name}]"),
        )
    records.dump(baseline, tmp_path / "baseline.json")
    current, case = _inject_regression(tmp_path)
    r = _cli("compare", tmp_path / "baseline.json", current)
    assert r.returncode == 1, r.stdout
    assert f"baseline kernel {old_name} is {K61} here (the same image)" in r.stdout
    assert f"REGRESSIONS (1):\n  {case} on {K61}: passed -> failed" in r.stdout
    assert f" on {old_name}:" not in r.stdout  # nothing "removed" under the old name
    md = tmp_path / "s.md"
    assert _cli("merge", current, "--baseline", tmp_path / "baseline.json", "--markdown", md).returncode == 1
    assert f"baseline kernel {old_name} is **{K61}** here" in md.read_text()


# -- the page in a real browser ----------------------------------------------


def _png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) into pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    pixels = [tuple(row[x * channels : x * channels + 3]) for row in rows for x in range(width)]
    return width, height, pixels


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.slow  # headless Chromium
def test_html_page_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package chromium; ci/setup.sh installs it)")
    page = tmp_path / "matrix.html"
    page.write_text(matrix.render_html(matrix.merge([records.load(p) for p in SINGLE])))
    shot = tmp_path / "matrix.png"
    r = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), f"chromium exit {r.returncode}: {r.stderr[-2000:]}"
    assert shot.stat().st_size > 20_000
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1200, 1400)
    counts = {
        name: sum(1 for p in pixels if p == _rgb(matrix.COLOURS[name]))
        for name in ("passed", "failed", "skipped", "error")
    }
    # cells are about 30 x 25 px; dozens of passes, a few failures
    assert counts["passed"] > 30 * 400, counts
    assert counts["failed"] > 2 * 400, counts
    assert counts["skipped"] > 400 and counts["error"] > 400, counts
