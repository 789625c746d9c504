"""What runs inside the VM: the agent, the fork server of a warm VM and its clean-up.

Started as ``python -m harness.guest``. This side imports only the
protocol (harness.protocol), what travels with a report (harness.reportattrs,
harness.splat, harness.ids) and the BPF toolkit (harness.bpf); nothing of the
plugin (harness.plugin) or of the host's VM handling (harness.vm).
"""
