"""Benchmarks of the harness against the floors a user could reach without it.

``bench/run.py`` is the command. One module per concern: ``measure`` (one
measurement on a shared machine, and the ``Bench`` that keeps them),
``logs`` (reading timed output and console logs), ``report`` (the machine
and the tables); one per benchmark group: ``boot`` (B1, B1x, guest start-up),
``per_test`` (B2), ``suite`` (B3), ``cache`` (B4), ``host`` (B5, host
profile). VMs booted outside the harness take the launcher's vng command
line from ``harness.vm.vng``.
"""
