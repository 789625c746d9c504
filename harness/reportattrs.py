"""The attributes the harness adds to pytest's TestReport: set and read only here.

They travel with the report (xdist and the guest serialise a report's whole
``__dict__``), so a failure inside a VM reaches the host's results file with
its errno and verifier log as data, not as text to parse.

    bpf_errno      "EACCES": the test failed on a BPFError
    verifier_log   the last lines of that error's verifier (or libbpf) log
    kernel_splat   a WARN/BUG/oops the guest's kernel logged during the test
    vm_lost        why the VM died or hung while the test ran
    kernel         the kernel the test ran on (also a JUnit property)
"""

from __future__ import annotations

from dataclasses import dataclass

LOG_LINES = 20


@dataclass(frozen=True)
class Extras:
    bpf_errno: str | None = None
    verifier_log: str | None = None
    kernel_splat: str | None = None
    vm_lost: str | None = None
    kernel: str | None = None


def set_bpf_error(report, exc) -> None:
    report.bpf_errno = exc.errno_name
    if exc.log:
        report.verifier_log = "\n".join(exc.log.splitlines()[-LOG_LINES:])


def set_splat(report, text: str) -> None:
    report.kernel_splat = text
    report.sections.append(("kernel splat", text))


def set_vm_lost(report, reason: str) -> None:
    report.vm_lost = reason


def set_kernel(report, name: str) -> None:
    report.kernel = name
    report.user_properties.append(("kernel", name))


def read(report) -> Extras:
    return Extras(**{name: getattr(report, name, None) for name in Extras.__dataclass_fields__})
