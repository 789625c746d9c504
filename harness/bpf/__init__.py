"""bpf() from Python: the libbpf binding, uapi constants, probes, instructions, BTF, fixtures and gates."""
