"""Small public datasets shipped with the package (sources and licences in ``datasets/README.md``).

``diabetes``: 442 patients, raw predictors ``age, sex, bmi, bp, s1..s6`` and disease progression ``y``
(Efron, Hastie, Johnstone & Tibshirani 2004). ``wampler1``: NIST StRD's degree-5 polynomial, ``x, y``.
"""

from __future__ import annotations

from pathlib import Path

from bayeslin_jax.core.errors import BayeslinError

NAMES = ("diabetes", "wampler1")


def path(name: str) -> Path:
    """The CSV file of dataset ``name``.

    Parameters
    ----------
    name : {"diabetes", "wampler1"}
        The dataset.

    Returns
    -------
    Path
        The shipped CSV file.

    Raises
    ------
    BayeslinError
        For an unknown name.

    Examples
    --------
    >>> from bayeslin_jax.core import datasets
    >>> datasets.path("wampler1").name
    'wampler1.csv'
    """
    if name not in NAMES:
        raise BayeslinError(f"unknown dataset {name!r}: use one of {', '.join(NAMES)}")
    return Path(__file__).with_name(f"{name}.csv")


def load(name: str):
    """Dataset ``name`` as a pandas DataFrame.

    Parameters
    ----------
    name : {"diabetes", "wampler1"}
        The dataset.

    Returns
    -------
    pandas.DataFrame
        Its columns (``x, y`` for ``wampler1``; ``age, sex, bmi, bp, s1..s6, y`` for ``diabetes``).

    Raises
    ------
    BayeslinError
        For an unknown name.

    Examples
    --------
    >>> from bayeslin_jax.core import datasets
    >>> datasets.load("wampler1").shape
    (21, 2)
    """
    import pandas as pd

    return pd.read_csv(path(name))


__all__ = ["NAMES", "load", "path"]
