# a module of this project and one of an installed pytest plugin (pytest-xdist, which the
# harness depends on): pytest rewrites both on the host, so must it in the guest, warning-free
pytest_plugins = ["nested_helpers", "xdist._version"]
