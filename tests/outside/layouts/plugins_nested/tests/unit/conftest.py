# a module of this project, one of an installed pytest plugin (pytest-xdist, which the harness
# depends on) and one of the harness's own: pytest rewrites the first two on the host, so must
# it in the guest; none may warn (pytest.ini: filterwarnings = error)
pytest_plugins = ["nested_helpers", "xdist._version", "harness.bpf.gates"]
