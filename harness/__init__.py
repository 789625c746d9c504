"""bpf-vm-harness: boot throwaway kernels with virtme-ng and run libbpf-backed pytest cases in them.

PYTEST_DONT_REWRITE: nothing here to rewrite, and a warm VM's fork server has
imported this package before pytest starts (pytest would warn about that).
"""
