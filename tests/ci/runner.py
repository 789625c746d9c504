"""Run a job of a workflow file here, the way a GitHub runner would: its `run:` steps in order, in bash, with the runner's files.

    wf = Workflow.load(ROOT / ".github/workflows/kernel-matrix.yml")
    run = LocalRun(wf, workspace, inputs={...}, checkouts={"project": proj, "harness": ROOT})
    plan = run.job("plan")                        # plan.outputs, plan.summary, plan.annotations
    run.job("kernel", matrix={"kernel": "6.1.192-3"})
    merge = run.job("matrix")                     # merge.result: "success" or "failure"

What is real: every `run:` script of the YAML, with the `env:` the YAML gives
it (its `${{ }}` expressions evaluated here, from inputs, matrix, needs and
steps), working-directory, $GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_STEP_SUMMARY,
$GITHUB_WORKSPACE and $RUNNER_TEMP, `if:` conditions and job outputs.

What stands in for the runner's machinery: actions/checkout copies (or links)
a directory given by the test; actions/cache restores the host's kernel cache
(what a warm cache holds); upload/download-artifact copy directories under
the run's artifact store. `container:` and `runs-on:` are not acted on: this
host is the Debian bookworm the kernel jobs' container is. An expression this
evaluator does not know is an error, so a workflow cannot drift past the test.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!(),])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.-]*))"
)
ANNOTATION = re.compile(r"^::(error|warning|notice)( [^:]*)?::(.*)$")


class WorkflowError(Exception):
    """The workflow uses something this local runner does not model."""


def _text(value) -> str:
    """A context value as the runner puts it into a string (env values, `${{ }}` in text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class Expression:
    """A recursive-descent evaluator for the part of GitHub's expression language the workflows use."""

    def __init__(self, text: str, contexts: dict):
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.contexts = contexts
        self.text = text

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text.rstrip()):
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos or m.lastgroup is None:
                raise WorkflowError(f"cannot read expression {text!r} at {text[pos:]!r}")
            kind = m.lastgroup
            out.append((kind, m.group(kind)))
            pos = m.end()
        return out

    def value(self):
        v = self._or()
        if self.pos != len(self.tokens):
            raise WorkflowError(f"unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
        return v

    def _peek(self, *ops: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] in [("op", o) for o in ops]

    def _take(self, op: str) -> None:
        if not self._peek(op):
            raise WorkflowError(f"expected {op!r} in {self.text!r}")
        self.pos += 1

    def _or(self):
        v = self._and()
        while self._peek("||"):
            self.pos += 1
            right = self._and()
            v = v or right
        return v

    def _and(self):
        v = self._eq()
        while self._peek("&&"):
            self.pos += 1
            right = self._eq()
            v = v and right
        return v

    def _eq(self):
        v = self._unary()
        if self._peek("==", "!="):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._unary()
            same = _text(v).lower() == _text(right).lower()  # GitHub compares strings ignoring case
            return same if op == "==" else not same
        return v

    def _unary(self):
        if self._peek("!"):
            self.pos += 1
            return not self._unary()
        return self._primary()

    def _primary(self):
        if self._peek("("):
            self.pos += 1
            v = self._or()
            self._take(")")
            return v
        kind, tok = self.tokens[self.pos]
        self.pos += 1
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        if self._peek("("):
            self.pos += 1
            args = []
            while not self._peek(")"):
                args.append(self._or())
                if self._peek(","):
                    self.pos += 1
            self._take(")")
            return self._call(tok, args)
        return self._lookup(tok)

    def _call(self, name: str, args: list):
        if name in ("always", "success") or name == "cancelled":
            return name != "cancelled"  # a local run is never cancelled, and failed steps stop it
        if name == "fromJSON":
            return json.loads(args[0])
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: _text(args[1 + int(m.group(1))]), args[0])
        raise WorkflowError(f"function {name}() is not modelled by the local runner")

    def _lookup(self, ref: str):
        head, *rest = ref.split(".")
        if head not in self.contexts:
            raise WorkflowError(f"context {head!r} (in {self.text!r}) is not modelled by the local runner")
        v = self.contexts[head]
        for part in rest:
            if not isinstance(v, dict) or part not in v:
                raise WorkflowError(f"{ref} is not defined here (in {self.text!r})")
            v = v[part]
        return v


def evaluate(text, contexts: dict):
    """A YAML value with `${{ }}`: the bare expression's value, or text with each expression substituted."""
    if not isinstance(text, str):
        return text
    whole = EXPR.fullmatch(text.strip())
    if whole:
        return Expression(whole.group(1), contexts).value()
    return EXPR.sub(lambda m: _text(Expression(m.group(1), contexts).value()), text)


@dataclass
class Workflow:
    path: Path
    data: dict

    @classmethod
    def load(cls, path: Path) -> Workflow:
        return cls(path, yaml.safe_load(path.read_text()))

    @property
    def on(self) -> dict:
        # PyYAML reads the key `on` as the boolean True (YAML 1.1)
        return self.data.get("on", self.data.get(True)) or {}

    def call_inputs(self) -> dict[str, dict]:
        return self.on["workflow_call"].get("inputs", {})


@dataclass
class JobResult:
    result: str  # success or failure
    outputs: dict[str, str]
    summary: str
    log: str
    annotations: list[tuple[str, dict[str, str], str]] = field(default_factory=list)

    def errors(self) -> list[tuple[dict[str, str], str]]:
        return [(props, msg) for level, props, msg in self.annotations if level == "error"]


def _unescape(text: str, prop: bool = False) -> str:
    if prop:
        text = text.replace("%3A", ":").replace("%2C", ",")
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def parse_annotation(line: str) -> tuple[str, dict[str, str], str] | None:
    m = ANNOTATION.match(line)
    if not m:
        return None
    props = {}
    for item in (m.group(2) or "").strip().split(","):
        if item:
            key, _, val = item.partition("=")
            props[key] = _unescape(val, prop=True)
    return m.group(1), props, _unescape(m.group(3))


def _read_kv(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT / $GITHUB_ENV: name=value lines, or name<<DELIM heredocs."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[name] = "\n".join(body)
        elif "=" in line:
            name, _, value = line.partition("=")
            out[name] = value
        i += 1
    return out


class LocalRun:
    """One workflow run: jobs are run one at a time by the test, in the order `needs:` gives."""

    def __init__(
        self,
        workflow: Workflow,
        workspace: Path,
        *,
        inputs: dict,
        checkouts: dict[str, Path],
        kernel_cache: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        self.wf = workflow
        self.workspace = workspace
        self.checkouts = checkouts
        self.kernel_cache = kernel_cache
        self.base_env = env if env is not None else self.clean_env()
        self.artifacts = workspace.parent / "artifacts"
        declared = workflow.call_inputs()
        unknown = set(inputs) - set(declared)
        if unknown:
            raise WorkflowError(f"inputs not declared by {workflow.path.name}: {sorted(unknown)}")
        self.inputs = {}
        for name, spec in declared.items():
            if name in inputs:
                self.inputs[name] = inputs[name]
            elif spec.get("required"):
                raise WorkflowError(f"required input {name!r} missing")
            else:
                self.inputs[name] = spec.get("default", "" if spec.get("type") == "string" else None)
        self.needs: dict[str, dict] = {}

    @staticmethod
    def clean_env() -> dict[str, str]:
        """This process's environment without what would leak into a runner's (GitHub's, the harness's, a venv's)."""
        drop = ("GITHUB_", "HARNESS_", "RUNNER_", "PYTEST_", "VIRTUAL_ENV")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
        return env

    def job(self, name: str, matrix: dict | None = None, timeout: float = 1800) -> JobResult:
        spec = self.wf.data["jobs"][name]
        contexts = {
            "inputs": self.inputs,
            "needs": {n: self.needs[n] for n in _as_list(spec.get("needs")) if n in self.needs},
            "matrix": matrix or {},
            "github": {"workspace": str(self.workspace), "action_path": ""},
            "runner": {"temp": str(self.workspace.parent / "runner-temp")},
            "env": {},
        }
        for need in _as_list(spec.get("needs")):
            if need not in self.needs:
                raise WorkflowError(f"job {name} needs {need}, which has not run")
        if "if" in spec and not evaluate(_bare(spec["if"]), contexts):
            raise WorkflowError(f"job {name} would be skipped: if: {spec['if']}")
        if matrix is not None:
            values = {k: evaluate(v, contexts) for k, v in spec["strategy"]["matrix"].items()}
            for k, v in matrix.items():
                if v not in values.get(k, []):
                    raise WorkflowError(f"matrix {k}={v!r} is not among {values.get(k)!r}")
        if self.workspace.exists():  # each job starts on a fresh runner
            shutil.rmtree(self.workspace)
        self.workspace.mkdir(parents=True)
        temp = Path(contexts["runner"]["temp"])
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True)
        job_env: dict[str, str] = {}
        steps: dict[str, dict] = {}
        contexts["steps"] = steps
        summary, log, annotations, failed = [], [], [], False
        for i, step in enumerate(spec["steps"]):
            contexts["env"] = dict(job_env)
            cond = step.get("if")
            if failed and not (cond and evaluate(_bare(cond), contexts)):
                continue
            if not failed and cond and not evaluate(_bare(cond), contexts):
                continue
            if "uses" in step:
                self._uses(step, contexts)
                continue
            files = {n: temp / f"{n}-{i}" for n in ("output", "env", "summary")}
            for f in files.values():
                f.write_text("")
            env = {
                **self.base_env,
                **job_env,
                **{k: _text(evaluate(v, contexts)) for k, v in (step.get("env") or {}).items()},
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace),
                "RUNNER_TEMP": str(temp),
                "GITHUB_OUTPUT": str(files["output"]),
                "GITHUB_ENV": str(files["env"]),
                "GITHUB_STEP_SUMMARY": str(files["summary"]),
            }
            script = temp / f"step-{i}.sh"
            script.write_text(evaluate(step["run"], contexts) if EXPR.search(step["run"]) else step["run"])
            shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
            if step.get("shell", "bash") != "bash":
                raise WorkflowError(f"shell {step['shell']!r} is not modelled")
            cwd = self.workspace / evaluate(step.get("working-directory", "."), contexts)
            r = subprocess.run(
                [*shell, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
            )
            text = r.stdout + r.stderr
            log.append(f"## {step.get('name', step['run'][:40])} (exit {r.returncode})\n{text}")
            annotations += [a for a in map(parse_annotation, r.stdout.splitlines()) if a]
            summary.append(files["summary"].read_text())
            job_env.update(_read_kv(files["env"]))
            if "id" in step:
                steps[step["id"]] = {"outputs": _read_kv(files["output"])}
            if r.returncode != 0:
                failed = True
        contexts["env"] = job_env
        outputs = {k: _text(evaluate(v, contexts)) for k, v in (spec.get("outputs") or {}).items()}
        result = "failure" if failed else "success"
        self.needs[name] = {"result": result, "outputs": outputs}
        return JobResult(result, outputs, "".join(summary), "\n".join(log), annotations)

    def stand_in(self, name: str, result: str = "success") -> None:
        """A job that ran elsewhere (its artifacts put there by the test with put_artifact)."""
        self.needs[name] = {"result": result, "outputs": {}}

    def _uses(self, step: dict, contexts: dict) -> None:
        action = step["uses"].split("@", 1)[0]
        with_ = {k: evaluate(v, contexts) for k, v in (step.get("with") or {}).items() if k != "key"}
        if action == "actions/checkout":
            path = with_.get("path") or "."
            source = self.checkouts[path]
            dest = self.workspace / path
            if path == "harness":
                # the harness at the input ref: this tree, with its set-up .venv (ci/setup.sh keeps it fresh)
                dest.symlink_to(source, target_is_directory=True)
            else:
                shutil.copytree(source, dest, symlinks=True)
        elif action == "actions/cache":
            # a warm cache: what the host's kernel cache holds
            target = self.workspace / with_["path"]
            if self.kernel_cache is not None and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(self.kernel_cache, target_is_directory=True)
        elif action == "actions/upload-artifact":
            src = self.workspace / with_["path"]
            if src.exists():
                dest = self.artifacts / with_["name"]
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(src, dest)
        elif action == "actions/download-artifact":
            if with_.get("merge-multiple"):
                raise WorkflowError("merge-multiple is not modelled")
            dest = self.workspace / with_.get("path", ".")
            dest.mkdir(parents=True, exist_ok=True)
            for art in sorted(self.artifacts.iterdir()) if self.artifacts.exists() else []:
                if fnmatch.fnmatchcase(art.name, with_.get("pattern", "*")):
                    shutil.copytree(art, dest / art.name)
        else:
            raise WorkflowError(f"action {action} is not modelled by the local runner")


def _as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _bare(cond: str) -> str:
    """An `if:` may leave out ${{ }}."""
    return cond if EXPR.search(cond) else "${{ " + cond + " }}"


def put_artifact(run: LocalRun, name: str, files: dict[str, Path]) -> None:
    """An artifact as a kernel job would have uploaded it (for merge-job tests on saved runs)."""
    dest = run.artifacts / name
    dest.mkdir(parents=True, exist_ok=True)
    for rel, src in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest / rel)
