"""Repository-wide pytest settings: markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots real kernels in VMs (slow under TCG)")


# separate projects that the tests copy elsewhere and run under --kernel
# (tests/plugin/test_outside.py, tests/plugin/test_headers.py)
collect_ignore = ["tests/outside", "tests/outside_bcc"]
