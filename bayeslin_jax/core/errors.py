"""The exception (and warning) types users see, each exception with the CLI exit status it maps to.

The CLI (``bayeslin_jax.interfaces.cli``) prints every one of them as a one-line ``error: ...`` and exits
with the class's ``exit_status``.
"""


class BayeslinError(ValueError):
    """Invalid user input (data, prior, noise or run settings), an unusable output path or a damaged store.

    The message names the problem in one line; the CLI prints it and exits with status 2. It is a
    ``ValueError``, so existing ``except ValueError`` code keeps working.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> try:
    ...     bl.known_noise(-1.0)
    ... except bl.BayeslinError as err:
    ...     print(f"{err} (exit status {err.exit_status})")
    noise sigma must be positive and finite, got -1.0 (exit status 2)
    """

    exit_status = 2


class StoreError(BayeslinError):
    """A store cannot be used: damaged, locked by another writer, or not writable (one-line message)."""


class StoreWarning(UserWarning):
    """A store needed repair that a run did itself (e.g. a damaged chunk recomputed on resume)."""


class BayeslinIOError(BayeslinError):
    """Reading or writing failed for a reason that is not the user's input: disk full, I/O error.

    The CLI exits with status 3. Raise it ``from`` the ``OSError`` so the cause stays attached.
    """

    exit_status = 3
