"""Combine results files into one cases x kernels matrix, compare two matrices, and render them as text, Markdown and HTML.

    m = merge([records.load(p) for p in paths])   # one run per CI job, or one run
    diff = compare(merge([baseline]), m)            # diff.regressions -> exit 1
    render_markdown(m, diff), render_html(m, diff), render_text(m)

Merging is by cell: (case without the kernel, kernel name). Two single-kernel
runs therefore give the same matrix as one run with both kernels.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from harness.report.records import BAD, LETTERS, OUTCOMES, CaseRecord, KernelRecord, RunRecord
from harness.versions import kernel_order

FAILING = frozenset({"failed", "error", "vm-lost"})
# What was fine before: a change from one of these to FAILING is a regression.
HEALTHY = frozenset({"passed", "xfailed", "skipped"})


@dataclass
class Matrix:
    kernels: list[KernelRecord]
    cases: list[str]
    cells: dict[tuple[str, str], CaseRecord]
    runs: list[dict] = field(default_factory=list)  # label, started, git_commit, complete
    warnings: list[str] = field(default_factory=list)

    def outcome(self, case: str, kernel: str) -> str | None:
        cell = self.cells.get((case, kernel))
        return cell.outcome if cell else None

    def failures(self) -> list[CaseRecord]:
        return [
            self.cells[(c, k.name)]
            for c in self.cases
            for k in self.kernels
            if (c, k.name) in self.cells and self.cells[(c, k.name)].outcome in BAD
        ]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for cell in self.cells.values():
            out[cell.outcome] = out.get(cell.outcome, 0) + 1
        return out

    def grid(self) -> dict[str, dict[str, str]]:
        """case -> kernel -> outcome: what "the same matrix" means."""
        return {
            c: {k.name: self.cells[(c, k.name)].outcome for k in self.kernels if (c, k.name) in self.cells}
            for c in self.cases
        }


def _worse(a: CaseRecord, b: CaseRecord) -> CaseRecord:
    rank = {o: i for i, o in enumerate(OUTCOMES)}
    return b if rank.get(b.outcome, len(rank)) > rank.get(a.outcome, len(rank)) else a


def merge(runs: list[RunRecord]) -> Matrix:
    kernels: dict[str, KernelRecord] = {}
    cells: dict[tuple[str, str], CaseRecord] = {}
    cases: dict[str, None] = {}
    warnings: list[str] = []
    meta = []
    for run in runs:
        meta.append(
            {
                "label": run.meta.label,
                "started": run.meta.started,
                "git_commit": run.meta.git_commit,
                "complete": run.complete,
                "host": run.meta.host,
            }
        )
        for k in run.kernels:
            known = kernels.get(k.name)
            if known is None or (known.boot_seconds is None and k.boot_seconds is not None):
                kernels[k.name] = k
            if known is not None and known.sha256 and k.sha256 and known.sha256 != k.sha256:
                warnings.append(
                    f"kernel {k.name}: two runs used different images "
                    f"(sha256 {known.sha256[:12]} vs {k.sha256[:12]}); cells show the worse outcome"
                )
        for c in run.cases:
            cases.setdefault(c.case)
            key = (c.case, c.kernel)
            if key in cells:
                if cells[key].outcome != c.outcome:
                    warnings.append(
                        f"{c.case} on {c.kernel}: {cells[key].outcome} in one run, "
                        f"{c.outcome} in another; showing the worse"
                    )
                cells[key] = _worse(cells[key], c)
            else:
                cells[key] = c
    used = {k for _, k in cells}
    # a kernel with no cell (all deselected) still shows: its column says so
    ordered = sorted(kernels.values(), key=lambda k: kernel_order(k.name))
    for name in sorted(used - set(kernels), key=kernel_order):
        ordered.append(KernelRecord(name=name, spec=name))
    return Matrix(kernels=ordered, cases=sorted(cases), cells=cells, runs=meta, warnings=warnings)


@dataclass
class Change:
    case: str
    kernel: str
    before: str | None
    after: str | None
    cell: CaseRecord | None  # the current cell, when there is one


@dataclass
class Comparison:
    regressions: list[Change]
    fixes: list[Change]
    other: list[Change]  # e.g. passed -> skipped
    new: list[Change]  # cells only in the current matrix
    removed: list[Change]  # cells only in the baseline
    # baseline kernel name -> the current name of the same image (a name of an older catalog)
    renamed: dict[str, str] = field(default_factory=dict)


def same_images(baseline: Matrix, current: Matrix) -> dict[str, str]:
    """Baseline kernels that the current matrix has under another name, by image sha256.

    Older catalogs named Debian builds by upstream version ("6.1.192"), a name
    later given to another build; a baseline recorded then still compares
    against the build it really ran ("6.1.192-3"), and only that one."""
    by_image = {k.sha256: k.name for k in current.kernels if k.sha256}
    return {
        k.name: by_image[k.sha256]
        for k in baseline.kernels
        if k.sha256 in by_image and by_image[k.sha256] != k.name
    }


def compare(baseline: Matrix, current: Matrix) -> Comparison:
    """A regression is a cell that was HEALTHY in the baseline and is FAILING now, on the same kernel
    (the same image: see same_images)."""
    renamed = same_images(baseline, current)
    before_cells = {(case, renamed.get(k, k)): cell for (case, k), cell in baseline.cells.items()}
    out = Comparison([], [], [], [], [], renamed)
    for key in sorted(set(before_cells) | set(current.cells), key=lambda k: (k[0], kernel_order(k[1]))):
        before, after = before_cells.get(key), current.cells.get(key)
        change = Change(
            key[0], key[1], before.outcome if before else None, after.outcome if after else None, after
        )
        if before is None:
            out.new.append(change)
        elif after is None:
            out.removed.append(change)
        elif change.before == change.after:
            continue
        elif change.before in HEALTHY and change.after in FAILING:
            out.regressions.append(change)
        elif change.before in FAILING and change.after in HEALTHY:
            out.fixes.append(change)
        else:
            out.other.append(change)
    return out


# -- text ---------------------------------------------------------------------


def render_text(m: Matrix) -> str:
    """One row per case, one column per kernel, a letter per cell (see LEGEND)."""
    if not m.cases:
        return "(no test results)"
    width = max(len(k.name) for k in m.kernels)
    case_w = min(max(len(c) for c in m.cases), 90)
    head = " " * case_w + "  " + " ".join(k.name.center(width) for k in m.kernels)
    lines = [head]
    for c in m.cases:
        label = c if len(c) <= case_w else "..." + c[-(case_w - 3) :]
        row = " ".join(LETTERS.get(m.outcome(c, k.name) or "", "-").center(width) for k in m.kernels)
        lines.append(f"{label:<{case_w}}  {row}")
    lines.append(LEGEND)
    return "\n".join(lines)


LEGEND = ". passed  F failed  E error  L VM lost  s skipped  x xfailed  X xpassed  - not run"


def render_comparison_text(d: Comparison) -> str:
    lines = [f"baseline kernel {old} is {new} here (the same image)" for old, new in d.renamed.items()]
    for title, changes in (
        ("REGRESSIONS", d.regressions),
        ("fixed", d.fixes),
        ("changed", d.other),
        ("new", d.new),
        ("removed", d.removed),
    ):
        if not changes:
            continue
        lines.append(f"{title} ({len(changes)}):")
        for ch in changes:
            lines.append(f"  {ch.case} on {ch.kernel}: {ch.before or '-'} -> {ch.after or '-'}")
            if ch.cell is not None and ch.cell.reproduce and ch.after in BAD:
                lines.append(f"      reproduce: {ch.cell.reproduce}")
    if not lines:
        lines.append("no differences")
    lines.append(
        f"{len(d.regressions)} regression(s), {len(d.fixes)} fix(es), "
        f"{len(d.new)} new, {len(d.removed)} removed"
    )
    return "\n".join(lines)


# -- Markdown -----------------------------------------------------------------

EMOJI = {
    "passed": "✅",
    "failed": "❌",
    "error": "💥",
    "vm-lost": "💀",
    "skipped": "⏭️",
    "xfailed": "☑️",
    "xpassed": "❗",
    None: "➖",
}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(m: Matrix, diff: Comparison | None = None) -> str:
    """A $GITHUB_STEP_SUMMARY page: verdict, matrix, kernels, failures with reproduce lines."""
    counts = m.counts()
    out = ["## BPF cases x kernels", ""]
    summary = ", ".join(f"{EMOJI[o]} {n} {o}" for o, n in counts.items() if n)
    out.append(f"{len(m.cases)} cases on {len(m.kernels)} kernels: {summary or 'no results'}")
    incomplete = [r for r in m.runs if not r["complete"]]
    if incomplete:
        out.append("")
        out.append(
            f"**{len(incomplete)} run(s) did not finish** "
            f"({', '.join(r['label'] or r['started'] for r in incomplete)}): missing cells are not passes."
        )
    if diff is not None:
        out += [
            "",
            f"**Against the baseline: {len(diff.regressions)} regression(s)**, "
            f"{len(diff.fixes)} fix(es), {len(diff.new)} new cell(s), {len(diff.removed)} removed.",
        ]
        out += [
            f"- baseline kernel {old} is **{new}** here (the same image)" for old, new in diff.renamed.items()
        ]
        for ch in diff.regressions:
            out.append(f"- ❌ `{ch.case}` on **{ch.kernel}**: {ch.before} → {ch.after}")
        for ch in diff.fixes:
            out.append(f"- ✅ `{ch.case}` on **{ch.kernel}**: {ch.before} → {ch.after}")
    out += [
        "",
        "| case | " + " | ".join(k.name for k in m.kernels) + " |",
        "|---|" + "|".join(":-:" for _ in m.kernels) + "|",
    ]
    for c in m.cases:
        row = " | ".join(EMOJI.get(m.outcome(c, k.name), "?") for k in m.kernels)
        out.append(f"| `{_md(c)}` | {row} |")
    out += ["", "Legend: " + ", ".join(f"{e} {o or 'not run'}" for o, e in EMOJI.items()), ""]
    out += [
        "### Kernels",
        "",
        "| kernel | release | source | accel | boot | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for k in m.kernels:
        boot = f"{k.boot_seconds:.1f} s" if k.boot_seconds is not None else "-"
        out.append(
            f"| {k.name} | {_md(k.release or '-')} | {_md(k.source or '-')} | "
            f"{(k.accel or '-').upper()} | {boot} | `{(k.sha256 or '-')[:16]}` |"
        )
    failures = m.failures()
    if failures:
        out += ["", f"### Failures ({len(failures)})", ""]
        for f in failures:
            out.append(
                f"<details><summary>{EMOJI[f.outcome]} <code>{html.escape(f.nodeid)}</code>: "
                f"{html.escape(f.outcome)}{' ' + html.escape(f.errno) if f.errno else ''}</summary>"
            )
            out += ["", "```"]
            out.append(_detail_text(f))
            out += ["```", "", "</details>", ""]
            out.append(f"Reproduce: `{f.reproduce}`")
            out.append("")
    if m.warnings:
        out += ["", "### Warnings", ""] + [f"- {_md(w)}" for w in m.warnings]
    return "\n".join(out).rstrip() + "\n"


def _detail_text(f: CaseRecord) -> str:
    parts = [f.message or "(no message)"]
    if f.vm_lost:
        parts.append(f"VM lost: {f.vm_lost}")
    if f.errno:
        parts.append(f"errno: {f.errno}")
    if f.verifier_log:
        parts.append("verifier log:\n" + f.verifier_log)
    if f.kernel_splat:
        parts.append("kernel splat:\n" + f.kernel_splat)
    parts.append(f"reproduce: {f.reproduce}")
    return "\n".join(parts).replace("```", "'''")


# -- HTML ---------------------------------------------------------------------

COLOURS = {
    "passed": "#2da44e",
    "failed": "#cf222e",
    "error": "#8250df",
    "vm-lost": "#24292f",
    "skipped": "#d0d7de",
    "xfailed": "#9be9a8",
    "xpassed": "#bf8700",
    None: "#ffffff",
}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1f2328}
h1{font-size:1.4em;margin:0 0 .3em}
table{border-collapse:collapse}
th,td{border:1px solid #d0d7de;padding:3px 6px}
.prov td,.prov th{font-size:12px;text-align:left}
.grid th.k{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:600}
.grid td.case{font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
.grid td.cell{width:2.2em;height:1.6em;text-align:center;color:#fff;font-weight:700;position:relative;padding:0}
.grid td.skipped,.grid td.none{color:#57606a}
details>summary{cursor:pointer;list-style:none}
details>summary::-webkit-details-marker{display:none}
details[open]>div.pop{position:absolute;z-index:2;left:2.4em;top:0;width:60ch;background:#fff;color:#1f2328;
 border:2px solid #cf222e;padding:.6em;text-align:left;font-weight:400;box-shadow:0 4px 12px #0004}
pre{white-space:pre-wrap;margin:.3em 0;font-size:12px}
code.repro{display:block;background:#f6f8fa;padding:.3em;font-size:12px;user-select:all}
.legend span{display:inline-block;padding:1px 8px;margin-right:4px;color:#fff;border-radius:3px}
.bad{color:#cf222e;font-weight:700}
"""

_JS = """
document.addEventListener('keydown',e=>{if(e.key==='Escape')
 document.querySelectorAll('details[open]').forEach(d=>d.open=false)});
"""


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _html_detail(f: CaseRecord) -> str:
    rows = [f"<b>{_esc(f.nodeid)}</b>: {_esc(f.outcome)}"]
    if f.message:
        rows.append(f"<pre>{_esc(f.message)}</pre>")
    if f.vm_lost:
        rows.append(f"<div>VM lost: {_esc(f.vm_lost)}</div>")
    if f.errno:
        rows.append(f"<div>errno: <b>{_esc(f.errno)}</b></div>")
    if f.verifier_log:
        rows.append(f"<div>verifier log:</div><pre>{_esc(f.verifier_log)}</pre>")
    if f.kernel_splat:
        rows.append(f"<div>kernel splat:</div><pre>{_esc(f.kernel_splat)}</pre>")
    if f.reproduce:
        rows.append(f'<div>reproduce:</div><code class="repro">{_esc(f.reproduce)}</code>')
    return "".join(rows)


def render_html(m: Matrix, diff: Comparison | None = None, title: str = "BPF cases x kernels") -> str:
    """One self-contained page: provenance header, coloured grid, failure details in <details>."""
    counts = m.counts()
    p = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<p>"
        + ", ".join(f"{n} {_esc(o)}" for o, n in counts.items() if n)
        + f" &mdash; {len(m.cases)} cases on {len(m.kernels)} kernels</p>",
    ]
    incomplete = [r for r in m.runs if not r["complete"]]
    if incomplete:
        p.append(f'<p class="bad">{len(incomplete)} run(s) did not finish; missing cells are not passes.</p>')
    p.append(
        '<table class="prov"><tr><th>kernel</th><th>release</th><th>uname -v</th><th>source</th>'
        "<th>package / origin</th><th>sha256</th><th>accel</th><th>boot</th></tr>"
    )
    for k in m.kernels:
        boot = f"{k.boot_seconds:.1f} s" if k.boot_seconds is not None else "-"
        p.append(
            f"<tr><td><b>{_esc(k.name)}</b></td><td>{_esc(k.release)}</td><td>{_esc(k.version)}</td>"
            f"<td>{_esc(k.source)}</td><td>{_esc(k.package or k.origin)}</td>"
            f"<td><code>{_esc(k.sha256)}</code></td><td>{_esc((k.accel or '-').upper())}</td>"
            f"<td>{boot}</td></tr>"
        )
    p.append("</table>")
    if diff is not None:
        p.append(
            f'<h2>Against the baseline: <span class="{"bad" if diff.regressions else ""}">'
            f"{len(diff.regressions)} regression(s)</span>, {len(diff.fixes)} fix(es), "
            f"{len(diff.new)} new, {len(diff.removed)} removed</h2><ul>"
        )
        for ch in diff.regressions + diff.fixes:
            p.append(
                f"<li><code>{_esc(ch.case)}</code> on <b>{_esc(ch.kernel)}</b>: "
                f"{_esc(ch.before)} &rarr; {_esc(ch.after)}</li>"
            )
        p.append("</ul>")
    p.append(
        '<p class="legend">'
        + "".join(
            f'<span style="background:{COLOURS[o]};{"color:#1f2328" if o in ("skipped", "xfailed") else ""}">'
            f"{LETTERS[o]} {o}</span>"
            for o in OUTCOMES
        )
        + " (click a cell for details; Esc closes)</p>"
    )
    p.append(
        '<table class="grid"><tr><th>case</th>'
        + "".join(f'<th class="k">{_esc(k.name)}</th>' for k in m.kernels)
        + "</tr>"
    )
    regressed = {(ch.case, ch.kernel) for ch in diff.regressions} if diff else set()
    for c in m.cases:
        p.append(f'<tr><td class="case">{_esc(c)}</td>')
        for k in m.kernels:
            cell = m.cells.get((c, k.name))
            outcome = cell.outcome if cell else None
            style = f"background:{COLOURS.get(outcome, '#fff')}"
            if (c, k.name) in regressed:
                style += ";outline:3px solid #bf8700;outline-offset:-3px"
            klass = f"cell {outcome or 'none'}"
            letter = LETTERS.get(outcome, "-") if outcome else "-"
            if cell is None:
                p.append(f'<td class="{klass}" style="{style}" title="not run">-</td>')
            elif outcome in BAD or cell.message:
                p.append(
                    f'<td class="{klass}" style="{style}"><details><summary '
                    f'title="{_esc(outcome)}">{letter}</summary><div class="pop">'
                    f"{_html_detail(cell)}</div></details></td>"
                )
            else:
                p.append(
                    f'<td class="{klass}" style="{style}" title="{_esc(outcome)} '
                    f'{cell.duration:.2f} s">{letter}</td>'
                )
        p.append("</tr>")
    p.append("</table>")
    failures = m.failures()
    if failures:
        p.append(f"<h2>Failures ({len(failures)})</h2>")
        for f in failures:
            p.append(
                f'<details><summary><code>{_esc(f.nodeid)}</code> <span class="bad">'
                f"{_esc(f.outcome)}</span></summary>{_html_detail(f)}</details>"
            )
    if m.warnings:
        p.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_esc(w)}</li>" for w in m.warnings) + "</ul>")
    runs = ", ".join(
        _esc(r["label"] or r["started"]) + ("" if r["complete"] else " (incomplete)") for r in m.runs
    )
    p.append(f'<p style="color:#57606a;font-size:12px">runs: {runs}</p>')
    p.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(p) + "\n"
