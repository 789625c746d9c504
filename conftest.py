"""Repository-wide pytest settings: markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots real kernels in VMs (slow under TCG)")
