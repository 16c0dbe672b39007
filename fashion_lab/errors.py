"""Errors a user can cause and fix: each carries one sentence that says what to do."""


class UserError(Exception):
    """A problem the user can fix (bad override, missing data, no GPU, diverging run).

    The message is shown as it is, without a stack trace, and the process exits non-zero.
    """


class DataError(UserError):
    """The dataset is missing, damaged or cannot be fetched."""


class RunInterrupted(Exception):
    """The user stopped the run (Ctrl-C); the message says how to continue it.

    Not a UserError: a sweep goes on past a job's UserError, but stops when interrupted.
    """
