"""Errors a user can act on. The CLI prints them as one line and exits with `exit_code`."""


class QAError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""

    exit_code = 1


class UsageError(QAError):
    """The command line or question itself is wrong (exit 2, like argument errors)."""

    exit_code = 2


class IndexUnusable(QAError):
    """The on-disk index is missing, unreadable, or was built for something else."""
