"""bpf-vm-harness: boot throwaway kernels with virtme-ng and run libbpf-backed pytest cases in them."""
