"""Which kernel a test id is for: the one grammar, used by the plugin, results, reports, bisect and ci/.

Under ``--kernel`` every test runs once per kernel, and its id carries the
kernel as the last part of its parameter brackets. The id without it is the
*case*: what the guest collects and what a results file calls the test::

    case                                 id on kernel 6.12.117-1
    t.py::test_a                         t.py::test_a[6.12.117-1]
    t.py::test_b[HASH-4]                 t.py::test_b[HASH-4-6.12.117-1]
    t.py::TestX::test_c                  t.py::TestX::test_c[6.12.117-1]
    m.py::m.func            (doctest)    m.py::m.func[6.12.117-1]
    t.py::test_d[a.b-[x]]                t.py::test_d[a.b-[x]-6.12.117-1]

The kernel is the exact catalog name (kernels/catalog.toml), never an alias
such as "6.12". Reading an id needs the run's kernel names, because a name
holds dashes itself (a Debian revision: "6.1.192-3", "7.3.4-1.bpo13+1"; a
local release: "6.1.0-47-amd64"); the longest name that ends the brackets wins.
"""

from __future__ import annotations

from collections.abc import Iterable


def _has_params(case: str) -> bool:
    return case.endswith("]") and "[" in case.rpartition("::")[2]


def names_kernel(spec: str, name: str) -> bool:
    """Whether spec names kernel name: the exact name, its series ("6.1" for 6.1.192-3) or its upstream
    version ("6.1.192" for its builds)."""
    return name == spec or name.startswith((spec + ".", spec + "-"))


def with_kernel(case: str, kernel: str) -> str:
    """The id of case on kernel."""
    if _has_params(case):
        return f"{case[:-1]}-{kernel}]"
    return f"{case}[{kernel}]"


def split(nodeid: str, kernels: Iterable[str]) -> tuple[str, str | None]:
    """(case, kernel) of a test id; the kernel is None when the id names none of kernels."""
    if nodeid.endswith("]"):
        for name in sorted(kernels, key=len, reverse=True):
            if nodeid.endswith(f"[{name}]"):
                return nodeid[: -len(name) - 2], name
            case = nodeid[: -len(name) - 2] + "]"
            if nodeid.endswith(f"-{name}]") and _has_params(case):
                return case, name
    return nodeid, None


def case_of(nodeid: str, kernel: str | None) -> str:
    """The id without its kernel (unchanged when kernel is None or not in the id)."""
    return split(nodeid, [kernel])[0] if kernel else nodeid
