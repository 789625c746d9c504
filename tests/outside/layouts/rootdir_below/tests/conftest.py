pytest_plugins = ["below_helpers"]
