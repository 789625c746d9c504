"""The item of a test on one kernel, as routing makes it and dispatch runs it."""

from __future__ import annotations

import pytest

from harness import ids


class KernelItem(pytest.Item):
    """A test (the case) on one kernel. It runs in a VM of that kernel, never on the host."""

    def __init__(self, *, case: pytest.Item, kernel: str, **kw):
        super().__init__(**kw)
        self.case = case
        self.kernel = kernel
        # -k and -m select by the test's own names and markers
        self.own_markers.extend(case.own_markers)
        self.keywords.update(case.keywords)
        self.extra_keyword_matches.update(case.extra_keyword_matches)

    @classmethod
    def for_case(cls, case: pytest.Item, kernel: str) -> KernelItem:
        assert case.parent is not None  # collected items always have one
        return cls.from_parent(
            case.parent,
            name=ids.with_kernel(case.name, kernel),
            nodeid=ids.with_kernel(case.nodeid, kernel),
            case=case,
            kernel=kernel,
        )

    def reportinfo(self):
        path, lineno, domain = self.case.reportinfo()
        return path, lineno, ids.with_kernel(domain, self.kernel)

    def runtest(self):
        raise RuntimeError(f"{self.nodeid} runs in a VM of {self.kernel}, not on the host")
