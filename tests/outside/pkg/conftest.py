import pytest
from kernelcheck import running_release


@pytest.fixture(scope="package")
def package_release():
    return running_release("package fixture")
