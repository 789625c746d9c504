"""The VMs, host side: virtme-ng command lines, the launcher, the seam dispatch sees, warm VMs and their keeper."""
