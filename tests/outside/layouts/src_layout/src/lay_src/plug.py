"""A plugin of the project's own, loaded with ``-p lay_src.plug`` (src/ on sys.path by ``pythonpath``)."""

import pytest


@pytest.fixture
def plug_answer():
    return 42
