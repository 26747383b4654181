"""The exception (and warning) types users see."""


class BayeslinError(ValueError):
    """Invalid user input (data, prior, noise or run settings).

    The message names the problem in one line; the CLI prints it and exits non-zero.
    """


class StoreError(BayeslinError):
    """A store cannot be used: damaged, locked by another writer, or not writable (one-line message)."""


class StoreWarning(UserWarning):
    """A store needed repair that a run did itself (e.g. a damaged chunk recomputed on resume)."""
