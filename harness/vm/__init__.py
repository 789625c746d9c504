"""The VMs: virtme-ng command lines, the host-guest protocol, the guest agent, warm VMs."""
