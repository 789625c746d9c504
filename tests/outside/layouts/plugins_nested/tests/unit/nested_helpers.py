import pytest


@pytest.fixture
def doubled():
    return lambda x: 2 * x
