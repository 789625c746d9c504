from kernelcheck import running_release


def test_package_fixture(package_release):
    assert package_release == running_release("test_package_fixture")
