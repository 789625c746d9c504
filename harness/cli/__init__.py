"""python -m harness: the kernels, report, bisect and vm commands."""
