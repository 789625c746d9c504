"""The machine a benchmark ran on, and its results as a Markdown table and a JSON file."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from bench.measure import REPO


def machine_info() -> dict:
    from harness import kernels  # noqa: PLC0415
    from harness.vm import accel, vng  # noqa: PLC0415

    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "?")
        except OSError:
            return "?"

    def out(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        except OSError:
            return "?"

    chosen = accel.choose()
    ks = {}
    for spec in ("6.1", "6.12"):
        try:
            k = kernels.resolve(spec, fetch=False, progress=False)
            ks[spec] = {"name": k.name, "release": k.release, "image": str(k.image)}
        except kernels.KernelError as exc:
            ks[spec] = {"error": str(exc)}
    dirty = out(["git", "status", "--porcelain", "--", "harness", "kernels", "cases", "bench"])
    return {
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "accel": chosen.name,
        "accel_reason": chosen.reason,
        "host_kernel": platform.release(),
        "python": platform.python_version(),
        "qemu": out(["qemu-system-x86_64", "--version"]),
        "vng": out([vng.find_vng(), "--version"]),
        "kernels": ks,
        "git_commit": out(["git", "rev-parse", "HEAD"]),
        "git_dirty": dirty != "?" and bool(dirty),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def render_markdown(report: dict) -> str:
    m = report["machine"]
    ks = ", ".join(
        f"{spec} = {k.get('name', '?')} ({k.get('release', k.get('error', '?'))})"
        for spec, k in m["kernels"].items()
    )
    lines = [
        f"# Benchmark results ({report['mode']})",
        "",
        f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory']} memory, "
        f"{m['accel'].upper()} ({m['accel_reason']}), host kernel {m['host_kernel']}",
        f"- kernels: {ks}",
        f"- {m['qemu']}; vng {m['vng']}; Python {m['python']}",
        f"- git {m['git_commit']}{' (dirty)' if m.get('git_dirty') else ''}, {m['date']}, "
        f"load at start {m['load_at_start']}",
        "",
        "| bench | what | value | baseline | ratio | target | met | N | 1-min load before (after) | QEMUs seen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        base = f"{fmt(r['baseline'])} {r['unit']} ({r['baseline_what']})" if r["baseline"] is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        after = r.get("load_1min_after") or [None] * len(r["load_1min"])
        load = ", ".join(
            f"{b:.2f}" + ("" if a is None else f" ({a:.2f})")
            for b, a in zip(r["load_1min"], after, strict=False)
        ) + ("" if r["all_quiet"] else " (busy)")
        qemus = ", ".join("" if q is None else str(q) for q in r.get("max_qemu_during", []))
        lines.append(
            f"| {r['bench']} | {r['what']} | {fmt(r['value'])} {r['unit']} | {base} | "
            f"{fmt(r['ratio'])} | {r['target']} | {met} | {r['n']} | {load} | {qemus} |"
        )
    for title, parts in report["breakdown"].items():
        lines += ["", f"## {title}", ""]
        for k, v in parts.items():
            if isinstance(v, list):
                lines.append(f"- {k}:")
                lines += [f"    - `{x}`" for x in v]
            else:
                lines.append(f"- {k}: {fmt(v)}")
    for note in report["notes"]:
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}" if abs(x) < 100 else f"{x:.1f}"
    return str(x)


def write(report: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "bench.md", out / "bench.json"
    md.write_text(render_markdown(report))
    js.write_text(json.dumps(report, indent=2) + "\n")
    return md, js
