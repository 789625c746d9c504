"""Find the first kernel where one case's outcome changes: binary search over catalog kernels, or `git bisect` over a kernel source tree.

"The outcome changes" means: the case's outcome in the step's results file
(passed, failed, skipped, error, vm-lost, xfailed, xpassed) differs from its
outcome on the --good kernel. So skipped -> passed is a change, just as
passed -> failed is; the search assumes one change between the two ends.

    steps = bisect_catalog("6.1.190-1", "6.12.111-1.deb12u1", "cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd",
                           run=PytestStep(workdir), on_step=print)

A step runner is any callable (spec, kernel_name, nodeid_with_kernel) ->
StepResult; PytestStep runs `pytest --kernel SPEC 'NODEID[NAME]'` in a
subprocess and reads the outcome from its results file. Tests pass a fake.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import ids
from harness.report import records
from harness.versions import kernel_order


class BisectError(Exception):
    """The bisection cannot go on; the message says why and what to do."""


@dataclass
class StepResult:
    target: str  # catalog kernel name, or a commit
    kernel: str  # the kernel name the test id carries
    outcome: str
    command: str  # the line that reruns this step
    detail: str | None = None  # the case's message, or why there is no outcome


@dataclass
class BisectResult:
    first_changed: str
    last_same: str
    before: str
    after: str
    steps: list[StepResult] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"first kernel where the outcome changes: {self.first_changed} "
            f"({self.before} on {self.last_same} and older, {self.after} from {self.first_changed})"
        )


class StepRunner(Protocol):
    def __call__(self, spec: str, kernel: str, nodeid: str) -> StepResult: ...


def catalog_range(good: str, bad: str, names: list[str]) -> list[str]:
    """Catalog names from good to bad inclusive, in version order (descending when good is newer)."""
    missing = [n for n in (good, bad) if n not in names]
    if missing:
        raise BisectError(
            f"{', '.join(missing)} not in the catalog; bisect takes exact names "
            f"such as {', '.join(sorted(names, key=kernel_order)[:3])} "
            "(see python -m harness kernels list)"
        )
    ordered = sorted(names, key=kernel_order)
    i, j = ordered.index(good), ordered.index(bad)
    if i == j:
        raise BisectError(f"--good and --bad are the same kernel ({good}); give two different kernels")
    return ordered[i : j + 1] if i < j else ordered[j : i + 1][::-1]


def bisect_list(
    targets: list[str],
    run: Callable[[str], StepResult],
    on_step: Callable[[StepResult], None] = lambda s: None,
    good_outcome: str | None = None,
) -> BisectResult:
    """Binary search for the first target whose outcome differs from targets[0]'s.

    targets[0] is run to learn the reference outcome (unless good_outcome is
    given); targets[-1] is only run when the answer would be it, so 4 kernels
    take 3 runs at most and often fewer.
    """
    if len(targets) < 2:
        raise BisectError("need at least two kernels to bisect")
    steps: list[StepResult] = []

    def step(target: str) -> StepResult:
        result = run(target)
        steps.append(result)
        on_step(result)
        return result

    ref = good_outcome or step(targets[0]).outcome
    lo, hi = 0, len(targets) - 1
    changed: StepResult | None = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        result = step(targets[mid])
        if result.outcome == ref:
            lo = mid
        else:
            hi, changed = mid, result
    if changed is None:
        changed = step(targets[hi])
        if changed.outcome == ref:
            raise BisectError(
                f"the case is {ref} on both {targets[0]} and {targets[-1]} (and every kernel tried "
                "between them): there is no change to find; check the node id and the two kernels"
            )
    return BisectResult(
        first_changed=targets[hi], last_same=targets[lo], before=ref, after=changed.outcome, steps=steps
    )


def bisect_catalog(
    good: str,
    bad: str,
    case: str,
    run: StepRunner,
    on_step: Callable[[StepResult], None] = lambda s: None,
    names: list[str] | None = None,
    good_outcome: str | None = None,
    source: str | None = None,
) -> BisectResult:
    """Bisect over catalog kernels; names (tests) replaces the catalog.

    source limits the kernels to one catalog source ("debian",
    "ubuntu-mainline", "any"); by default the source both ends share, so a
    bisect between two Debian kernels does not wander into mainline builds a
    Debian-only machine cannot fetch.
    """
    specs: dict[str, str] = {}
    if names is None:
        from harness.kernels import catalog as kc  # noqa: PLC0415 - keep import light

        cat = kc.load_catalog()
        good, bad = (_catalog_name(x, cat) for x in (good, bad))
        entries = cat.entries
        by_name = {e.name: e.source for e in entries}
        if source is None and by_name.get(good) and by_name.get(good) == by_name.get(bad):
            source = by_name[good]
        chosen = [
            e for e in entries if source in (None, "any") or e.source == source or e.name in (good, bad)
        ]
        names = [e.name for e in chosen]
        # "5.10" is Debian's series and the mainline build's name: each step names its kernel unambiguously.
        specs = {e.name: kc.spec_for(e, cat) for e in chosen}
    case = strip_kernel(case, names)
    targets = catalog_range(good, bad, names)
    return bisect_list(
        targets,
        lambda k: run(specs.get(k, k), k, ids.with_kernel(case, k)),
        on_step,
        good_outcome,
    )


def _catalog_name(spec: str, catalog) -> str:
    """An exact catalog name for --good/--bad: "5.10" -> the entry --kernel 5.10 boots; unknown specs stay as typed."""
    from harness.kernels import KernelError  # noqa: PLC0415 - keep import light
    from harness.kernels import catalog as kc  # noqa: PLC0415

    try:
        entry = kc.resolve_spec(spec, catalog)
    except KernelError:
        return spec  # catalog_range says what is wrong, listing the names
    return entry.name if isinstance(entry, kc.CatalogEntry) else spec


def strip_kernel(nodeid: str, names: list[str]) -> str:
    """Accept a node id with or without a kernel parameter ("...[6.1.192-3]")."""
    return ids.split(nodeid, names)[0]


class PytestStep:
    """Runs one step as `pytest --kernel SPEC 'NODEID'` in a subprocess and reads its results file."""

    def __init__(
        self,
        workdir: Path,
        extra_args: list[str] | None = None,
        cwd: Path | None = None,
        python: str = sys.executable,
        verbose: bool = False,
    ):
        self.workdir = Path(workdir)
        self.extra = list(extra_args or [])
        self.cwd = cwd
        self.python = python
        self.verbose = verbose
        self.count = 0

    def __call__(self, spec: str, kernel: str, nodeid: str) -> StepResult:
        self.count += 1
        tag = re.sub(r"[^A-Za-z0-9.+-]", "_", kernel)
        results = self.workdir / f"step{self.count:02d}-{tag}.json"
        log = self.workdir / f"step{self.count:02d}-{tag}.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "--kernel",
            spec,
            "--results-dir",
            str(self.workdir / "logs"),
            "--results-json",
            str(results),
            *self.extra,
            nodeid,
        ]
        with open(log, "w") as out:
            proc = subprocess.run(
                cmd,
                cwd=self.cwd,
                stdout=None if self.verbose else out,
                stderr=subprocess.STDOUT if not self.verbose else None,
            )
        command = records.reproduce_line(nodeid, spec)
        try:
            run = records.load(results)
        except records.ResultsError:
            raise BisectError(
                f"step on {kernel} produced no results (pytest exit {proc.returncode}); "
                f"its output is in {log}; rerun it with: {command}"
            ) from None
        for case in run.cases:
            if case.nodeid == nodeid:
                return StepResult(kernel, kernel, case.outcome, command, case.message)
        raise BisectError(
            f"{nodeid} did not run on {kernel} (pytest exit {proc.returncode}): the node "
            f"id is not collected there; check it with: {command} --collect-only; "
            f"output in {log}"
        )


# -- source trees -------------------------------------------------------------


def _git(tree: Path, *args: str) -> str:
    r = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise BisectError(f"git {' '.join(args)} in {tree} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


_FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)


def bisect_git(
    tree: Path,
    good: str,
    bad: str,
    case: str,
    run: StepRunner,
    build: Callable[[Path], str],
    on_step: Callable[[StepResult], None] = lambda s: None,
    good_outcome: str | None = None,
    max_steps: int = 64,
) -> BisectResult:
    """git bisect over a kernel tree: at each commit build(tree) -> kernel name, then run the case.

    A step whose outcome equals the good commit's is "good", any other
    outcome "bad"; a commit that does not build is skipped (git bisect skip).
    The tree is returned to its branch (git bisect reset) whatever happens.
    """
    tree = Path(tree).resolve()
    if _git(tree, "status", "--porcelain", "--untracked-files=no").strip():
        raise BisectError(
            f"{tree} has uncommitted changes; git bisect would check out over them. "
            "Commit or stash them first"
        )
    steps: list[StepResult] = []

    def step(commit: str) -> StepResult | None:
        try:
            kernel = build(tree)
        except Exception as e:  # noqa: BLE001 - any build failure makes the commit untestable
            print(f"bisect: {commit[:12]} does not build ({e}); skipping it", file=sys.stderr)
            return None
        result = run(str(tree), kernel, ids.with_kernel(case, kernel))
        result.target = commit
        steps.append(result)
        on_step(result)
        return result

    good_sha = _git(tree, "rev-parse", f"{good}^{{commit}}").strip()
    bad_sha = _git(tree, "rev-parse", f"{bad}^{{commit}}").strip()
    ref = good_outcome
    if ref is None:
        start = _git(tree, "rev-parse", "--abbrev-ref", "HEAD").strip()
        start = start if start != "HEAD" else _git(tree, "rev-parse", "HEAD").strip()
        _git(tree, "checkout", "-q", good_sha)
        try:
            first = step(good_sha)
        finally:
            _git(tree, "checkout", "-q", start)
        if first is None:
            raise BisectError(f"the good commit {good} does not build; pick another good commit")
        ref = first.outcome
    _git(tree, "bisect", "start", bad_sha, good_sha)
    try:
        for _ in range(max_steps):
            head = _git(tree, "rev-parse", "HEAD").strip()
            result = step(head)
            verdict = "skip" if result is None else ("good" if result.outcome == ref else "bad")
            out = _git(tree, "bisect", verdict)
            m = _FIRST_BAD.search(out)
            if m:
                first_bad = m.group(1)
                after = next((s.outcome for s in steps if s.target == first_bad), "changed")
                return BisectResult(
                    first_changed=first_bad, last_same=good_sha, before=ref, after=after, steps=steps
                )
            if "only skipped commits left" in out:
                raise BisectError(
                    f"git bisect cannot decide, commits that do not build are in the way:\n{out}"
                )
        raise BisectError(f"no answer after {max_steps} steps")
    finally:
        subprocess.run(["git", "-C", str(tree), "bisect", "reset"], capture_output=True)
