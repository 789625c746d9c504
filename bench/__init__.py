"""Benchmarks of the harness against the floors a user could reach without it (see bench/run.py)."""
