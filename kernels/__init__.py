"""The kernel catalog and the sources kernels are obtained from (installed as harness.kernels)."""
