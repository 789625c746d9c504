"""A case gated above every catalog kernel: collecting it must be a usage error (tests/test_gates_catalog.py)."""

import pytest


@pytest.mark.min_kernel("99.1")
def test_from_the_future():
    pass
