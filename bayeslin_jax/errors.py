"""The one exception type users see for bad input."""


class BayeslinError(ValueError):
    """Invalid user input (data, prior, noise or run settings).

    The message names the problem in one line; the CLI prints it and exits non-zero.
    """
