"""Repository-wide pytest settings: markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots real kernels in VMs (slow under TCG)")


# a separate project that the tests copy elsewhere and run under --kernel (tests/test_outside.py)
collect_ignore = ["tests/outside"]
