"""The one exception type of harness.kernels: every failure a user can act on."""

from __future__ import annotations


class KernelError(Exception):
    """A kernel could not be resolved, fetched, built or verified.

    The message is complete and meant for the user as is: what happened,
    what was expected and what to do. Callers print it; no traceback needed.
    """


class ArchiveUnreachable(KernelError):
    """A download archive could not be reached at all (as opposed to a 404 or
    a bad checksum). resolve() catches it to add the kernels that are
    available without that archive, then re-raises a plain KernelError."""
