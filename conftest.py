"""Repository-wide pytest settings: markers of the harness's own tests, pytester for the in-process ones."""

pytest_plugins = ["pytester"]


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots real kernels in VMs (slow under TCG)")
    config.addinivalue_line(
        "markers",
        "slow: boots nothing, but takes seconds: the fake vng (needs root), headless Chromium, "
        "a local archive of real kernel packages, the real cases or CI's merge job in subprocesses; "
        "left out by ci/test.sh --fast",
    )


# separate projects that the tests copy elsewhere and run under --kernel
# (tests/plugin/test_outside.py, tests/plugin/test_headers.py)
collect_ignore = ["tests/outside", "tests/outside_bcc"]
