"""Priors for a user's data: the data-scaled default rule, the prior choices of the CLI and the API, and the
checks that say when a prior dominates the data or conflicts with it.

The default rule (rstanarm's autoscaling, which Bambi follows) for a design ``phi: (n, d)`` and ``y: (n,)``:

* a slope ``w_j`` (every column but the intercept): ``Normal(0, 2.5 sd(y) / sd(phi_j))``;
* the intercept (a column of ones, if the design has one) on *centred* predictors:
  ``w_0 + sum_j mean(phi_j) w_j ~ Normal(mean(y), 2.5 sd(y))``;
* the noise: ``sigma ~ Exponential(rate = 1 / sd(y))`` (learned unless ``sigma`` fixes it).

For the Bernoulli and Poisson families ``y`` has no scale of its own: ``sd(y)`` is replaced by 1 and
``mean(y)`` by 0 (rstanarm's GLM defaults). ``sd`` has ``ddof = 1``. Every default is printed by the CLI,
kept in the DataTree's attributes and the JSON (:func:`prior_lines`), and the tutorial's priors stay available
by name (``prior="tutorial"``: ``Normal(0, 0.2)`` weights, ``sigma = 0.1``).

Explicit choices override parts of the rule: ``prior_scale`` (one number or one per coefficient) puts
``Normal(prior_mean, prior_scale)`` on every coefficient, intercept included, on the raw scale (release 0.2's
meaning); the ``intercept_*`` options set the intercept's prior on centred predictors; ``prior`` picks the family
(``normal``, ``student_t``, ``cauchy``, ``flat``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import numpy as np

from bayeslin_jax.core.errors import BayeslinError

#: rstanarm's autoscale factor.
AUTOSCALE = 2.5
#: Default degrees of freedom of a Student-t prior (weights) and of a half-t noise prior.
STUDENT_T_DF = 3.0
WEIGHT_FAMILIES = ("auto", "normal", "student_t", "cauchy", "flat", "tutorial")
INTERCEPT_FAMILIES = ("auto", "normal", "student_t", "cauchy", "flat")
NOISE_FAMILIES = ("auto", "half_normal", "half_cauchy", "half_t", "exponential", "flat")
#: Likelihoods whose response has its own scale (Gaussian-like) vs the GLM families.
SCALED_LIKELIHOODS = ("gaussian", "student_t", "horseshoe")
GLM_LIKELIHOODS = ("bernoulli", "poisson")
#: Prior checks: a posterior sd above this fraction of the prior sd means the prior dominates the data.
DOMINATES_RATIO = 0.9
#: A posterior mean more than this many prior sds from the prior mean conflicts with the prior.
CONFLICT_SDS = 4.0
#: A known sigma further than this factor from the residual sd conflicts with the data.
SIGMA_CONFLICT_FACTOR = 3.0


def family_name(text: str | None, allowed: tuple[str, ...], what: str) -> str:
    """Read a prior family name: ``"student-t"`` -> ``"student_t"`` (and ``"half-t"``, ...); None -> ``"auto"``.

    Parameters
    ----------
    text : str or None
        The name as given (case, ``-`` and aliases such as ``"t"``, ``"exp"``, ``"halfnormal"`` are accepted).
    allowed : tuple of str
        The names allowed here (e.g. :data:`WEIGHT_FAMILIES`).
    what : str
        What is named, for the error message (``"weight prior"``).

    Returns
    -------
    str
        One of ``allowed``.

    Raises
    ------
    BayeslinError
        A name not in ``allowed`` (one line listing them).
    """
    name = "auto" if text is None else str(text).strip().lower().replace("-", "_")
    name = {"independent": "normal", "t": "student_t", "studentt": "student_t", "halfnormal": "half_normal",
            "halfcauchy": "half_cauchy", "half_student_t": "half_t", "exp": "exponential"}.get(name, name)
    if name not in allowed:
        shown = ", ".join(a.replace("_", "-") for a in allowed)
        raise BayeslinError(f"unknown {what} {text!r}: use one of {shown}")
    return name


def intercept_index(phi: np.ndarray, names: tuple[str, ...] | None = None) -> int | None:
    """The intercept column of a design: the first column equal to 1 in every row.

    Parameters
    ----------
    phi : (n, d) array
        The design.
    names : tuple of str, optional
        The column names (unused: the column's values decide).

    Returns
    -------
    int or None
        The column's position; None if there is none.
    """
    ones = np.flatnonzero(np.all(np.asarray(phi) == 1.0, axis=0))
    return int(ones[0]) if ones.size else None


def _positive(value, what: str) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise BayeslinError(f"{what} must be positive and finite, got {value:g}")
    return value


def response_scale(y: np.ndarray, likelihood: str) -> tuple[float, float]:
    """The location and scale of the response that the default rule scales by.

    Parameters
    ----------
    y : (n,) array
        The response.
    likelihood : str
        The model family (:data:`SCALED_LIKELIHOODS` or :data:`GLM_LIKELIHOODS`).

    Returns
    -------
    location, scale : float
        ``(mean(y), sd(y))`` (``ddof = 1``), or ``(0, 1)`` for the GLM families.

    Raises
    ------
    BayeslinError
        Fewer than two points, or a constant response (it has no scale).
    """
    if likelihood in GLM_LIKELIHOODS:
        return 0.0, 1.0
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2:
        raise BayeslinError(f"need at least 2 data points, got {y.size}")
    if not np.ptp(y) > 0:
        raise BayeslinError("the response is constant: the default priors scale by sd(y); give --prior-scale and "
                            "--sigma-prior-scale (or sigma) explicitly")
    return float(np.mean(y)), float(np.std(y, ddof=1))


def predictor_scales(phi: np.ndarray, intercept: int | None) -> np.ndarray:
    """The sd of every design column, ``sd(phi_j)`` (``ddof = 1``), 1 for the intercept.

    Parameters
    ----------
    phi : (n, d) array
        The design.
    intercept : int or None
        The intercept column (:func:`intercept_index`).

    Returns
    -------
    numpy.ndarray, shape ``(d,)``
        The scales.

    Raises
    ------
    BayeslinError
        A constant column other than the intercept.
    """
    phi = np.asarray(phi, dtype=np.float64)
    sd = np.std(phi, axis=0, ddof=1) if phi.shape[0] > 1 else np.ones(phi.shape[1])
    if intercept is not None:
        sd[intercept] = 1.0
    if not np.all(sd > 0):
        k = int(np.flatnonzero(~(sd > 0))[0])
        raise BayeslinError(f"design column {k} is constant: the default priors scale slopes by 1 / sd(column)")
    return sd


@dataclass(frozen=True)
class PriorChoice:  # numpydoc ignore=PR02
    """What a user asked for (None: the default rule decides). Families use ``_`` (``student_t``, ``half_t``).

    Parameters
    ----------
    prior, prior_mean, prior_scale, prior_df
        The weights' family (:data:`WEIGHT_FAMILIES`), mean and scale (a number or one per coefficient) and
        Student-t degrees of freedom.
    prior_cov
        A multivariate-normal prior's covariance ``(d, d)`` (``prior="mvn"``).
    intercept_prior, intercept_mean, intercept_scale, intercept_df
        The intercept's prior on centred predictors (:data:`INTERCEPT_FAMILIES`).
    sigma
        A known noise sd (the noise is then not learned).
    sigma_prior, sigma_prior_scale, sigma_prior_df
        The noise prior (:data:`NOISE_FAMILIES`); ``sigma_prior_scale`` alone keeps release 0.2's meaning,
        ``HalfNormal(scale)``.
    notes : tuple of str
        Free-form notes carried along (not compared).

    Raises
    ------
    BayeslinError
        An unknown family, or options that contradict each other (e.g. ``sigma`` with a sigma prior, a df for a
        family without one, a mean or scale for a flat prior).
    """

    prior: str = "auto"
    prior_mean: object = None
    prior_scale: object = None
    prior_df: float | None = None
    prior_cov: object = None
    intercept_prior: str = "auto"
    intercept_mean: float | None = None
    intercept_scale: float | None = None
    intercept_df: float | None = None
    sigma: float | None = None
    sigma_prior: str = "auto"
    sigma_prior_scale: float | None = None
    sigma_prior_df: float | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        """Normalize the family names; refuse options that contradict each other (see the class's Raises)."""
        object.__setattr__(self, "prior", family_name(self.prior, (*WEIGHT_FAMILIES, "mvn"), "weight prior"))
        object.__setattr__(self, "intercept_prior",
                           family_name(self.intercept_prior, INTERCEPT_FAMILIES, "intercept prior"))
        object.__setattr__(self, "sigma_prior", family_name(self.sigma_prior, NOISE_FAMILIES, "sigma prior"))
        if self.sigma is not None and (self.sigma_prior != "auto" or self.sigma_prior_scale is not None
                                       or self.sigma_prior_df is not None):
            raise BayeslinError("sigma fixes the noise: drop the sigma prior options (or drop sigma to learn it)")
        if self.prior_df is not None and self.prior not in ("student_t",):
            raise BayeslinError("prior df applies to the Student-t weight prior only (prior 'student-t')")
        if self.intercept_df is not None and self.intercept_prior != "student_t":
            raise BayeslinError("intercept df applies to the Student-t intercept prior only")
        if self.sigma_prior_df is not None and self.sigma_prior != "half_t":
            raise BayeslinError("sigma prior df applies to the half-t sigma prior only (sigma prior 'half-t')")
        if self.prior_cov is not None and self.prior != "mvn":
            raise BayeslinError("a prior covariance needs the mvn prior (prior 'mvn')")
        if self.prior == "mvn" and self.prior_cov is None:
            raise BayeslinError("the mvn prior needs a prior covariance")
        if self.prior == "flat" and (self.prior_scale is not None or self.prior_mean is not None):
            raise BayeslinError("flat weights have no mean or scale: drop prior mean / prior scale")
        if self.intercept_prior == "flat" and (self.intercept_mean is not None or self.intercept_scale is not None):
            raise BayeslinError("a flat intercept prior has no mean or scale: drop intercept mean / intercept scale")
        if self.sigma_prior == "flat" and self.sigma_prior_scale is not None:
            raise BayeslinError("a flat sigma prior has no scale: drop sigma prior scale")
        if self.prior == "tutorial" and (self.prior_scale is not None or self.prior_mean is not None):
            raise BayeslinError("the tutorial prior is N(0, 0.2): drop prior mean / prior scale, or pick a family")

    @property
    def touches_intercept(self) -> bool:
        """Whether any intercept option was given.

        Returns
        -------
        bool
            True when an ``intercept_*`` field is set.
        """
        return (self.intercept_prior != "auto" or self.intercept_mean is not None or self.intercept_scale is not None
                or self.intercept_df is not None)

    @property
    def touches_sigma(self) -> bool:
        """Whether any noise option was given.

        Returns
        -------
        bool
            True when ``sigma`` or a ``sigma_prior*`` field is set.
        """
        return (self.sigma is not None or self.sigma_prior != "auto" or self.sigma_prior_scale is not None
                or self.sigma_prior_df is not None)

    @property
    def touches_weights(self) -> bool:
        """Whether any weight (or intercept) option was given.

        Returns
        -------
        bool
            True when a ``prior*`` or ``intercept_*`` field is set.
        """
        return (self.prior != "auto" or self.prior_mean is not None or self.prior_scale is not None
                or self.prior_df is not None or self.prior_cov is not None or self.touches_intercept)


def _vector(value, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.shape != (dim,):
        raise BayeslinError(f"{what} must be one number or {dim} (one per coefficient), got {arr.size}")
    return arr


def weight_prior(phi: np.ndarray, y: np.ndarray, choice: PriorChoice, likelihood: str = "gaussian"):
    """The weight prior of ``choice`` on a design (see the module docstring for the rule).

    Parameters
    ----------
    phi : (n, d) array
        The design.
    y : (n,) array
        The response.
    choice : PriorChoice
        What the user asked for.
    likelihood : str
        The model family (a GLM family scales by 1 instead of sd(y)).

    Returns
    -------
    WeightPrior
        A :data:`~bayeslin_jax.core.priors.WeightPrior`.

    Raises
    ------
    BayeslinError
        A choice that does not fit the design (intercept options without an intercept column, a vector of the
        wrong length, a non-positive scale), a constant response or column.
    """
    return weight_prior_with_text(phi, y, choice, likelihood)[0]


def weight_prior_with_text(phi: np.ndarray, y: np.ndarray, choice: PriorChoice, likelihood: str = "gaussian",
                           names: tuple[str, ...] | None = None):
    """:func:`weight_prior` and one human line per coefficient.

    The lines are written per coefficient as chosen (the centred intercept's line says so) even where the prior is
    stored as the equivalent multivariate normal.

    Parameters
    ----------
    phi : (n, d) array
        The design.
    y : (n,) array
        The response.
    choice : PriorChoice
        What the user asked for.
    likelihood : str
        The model family.
    names : tuple of str, optional
        The feature names (default ``w[k]``).

    Returns
    -------
    prior : WeightPrior
        As :func:`weight_prior`.
    lines : list of str
        One line per coefficient (``age ~ Normal(0, 14.7)``).

    Raises
    ------
    BayeslinError
        As :func:`weight_prior`.
    """
    from bayeslin_jax.core import priors

    names = tuple(f"w[{k}]" for k in range(np.shape(phi)[1])) if names is None else tuple(names)
    terms = _weight_terms(phi, y, choice, likelihood)
    if not isinstance(terms, tuple):
        return terms, _prior_text(terms, names)
    families, mean, scales, dfs, intercept, shift = terms
    prior = priors.term_prior(families, mean, scales, dfs, intercept=intercept, shift=shift)
    import jax.numpy as jnp

    shown = priors.TermPrior(jnp.asarray(mean), jnp.asarray(scales), jnp.asarray(dfs),
                             jnp.asarray(np.zeros(len(families)) if shift is None else shift), tuple(families),
                             intercept)
    return prior, shown.text(names)


def _weight_terms(phi: np.ndarray, y: np.ndarray, choice: PriorChoice, likelihood: str):
    """A finished prior, or the arguments ``(family, mean, scale, df, intercept, shift)`` of ``term_prior``."""
    from bayeslin_jax.core import priors

    phi = np.asarray(phi, dtype=np.float64)
    dim = phi.shape[1]
    if choice.prior == "tutorial":
        return priors.independent_normal(0.0, 0.2, dim)
    if choice.prior == "mvn":
        mean: Any = 0.0 if choice.prior_mean is None else choice.prior_mean
        cov = np.asarray(choice.prior_cov, dtype=np.float64)
        return priors.mvn(np.broadcast_to(np.asarray(mean, dtype=float), (cov.shape[0],)) if np.ndim(mean) == 0
                          else mean, cov)
    family = "normal" if choice.prior == "auto" else choice.prior
    df = STUDENT_T_DF if choice.prior_df is None else _positive(choice.prior_df, "prior df")
    if family == "cauchy":
        family, df = "student_t", 1.0
    if family == "flat" and not choice.touches_intercept:
        return priors.flat_prior(dim)
    intercept = intercept_index(phi)
    raw = choice.prior_scale is not None and not choice.touches_intercept
    loc, scale = response_scale(y, likelihood) if not raw else (0.0, 1.0)
    if raw:  # every coefficient, intercept included, on the raw scale
        mean = _vector(0.0 if choice.prior_mean is None else choice.prior_mean, dim, "prior mean")
        scales = _vector(choice.prior_scale, dim, "prior scale")
        return (family,) * dim, mean, scales, np.full(dim, df), None, None
    sd_x = predictor_scales(phi, intercept)
    scales = (AUTOSCALE * scale / sd_x if choice.prior_scale is None
              else _vector(choice.prior_scale, dim, "prior scale"))
    mean = np.zeros(dim) if choice.prior_mean is None else _vector(choice.prior_mean, dim, "prior mean")
    families = [family] * dim
    dfs = np.full(dim, df)
    if intercept is None:
        if choice.touches_intercept:
            raise BayeslinError("the design has no intercept column: drop the intercept prior options")
        return tuple(families), mean, scales, dfs, None, None
    ifamily = choice.intercept_prior
    if ifamily == "auto":  # flat with flat weights, unless the intercept's mean or scale was given
        given = choice.intercept_mean is not None or choice.intercept_scale is not None
        ifamily = "flat" if family == "flat" and not given else "normal"
    idf = STUDENT_T_DF if choice.intercept_df is None else _positive(choice.intercept_df, "intercept df")
    if ifamily == "cauchy":
        ifamily, idf = "student_t", 1.0
    families[intercept] = ifamily
    dfs[intercept] = idf
    mean[intercept] = loc if choice.intercept_mean is None else float(choice.intercept_mean)
    scales[intercept] = (AUTOSCALE * scale if choice.intercept_scale is None
                         else _positive(choice.intercept_scale, "intercept scale"))
    if family == "flat":
        scales = np.where(np.arange(dim) == intercept, scales, 1.0)
    shift = phi.mean(axis=0)
    shift[intercept] = 0.0
    return tuple(families), mean, scales, dfs, intercept, shift


def noise_prior(y: np.ndarray, choice: PriorChoice):
    """The noise of ``choice``: known, or learned with a prior scaled by sd(y).

    Parameters
    ----------
    y : (n,) array
        The response.
    choice : PriorChoice
        What the user asked for.

    Returns
    -------
    Noise
        A :data:`~bayeslin_jax.core.priors.Noise`: ``KnownNoise`` for ``sigma``, else the chosen prior (default
        ``Exponential(1 / sd(y))``).

    Raises
    ------
    BayeslinError
        A non-positive scale or df, a constant response.
    """
    from bayeslin_jax.core import priors

    if choice.sigma is not None:
        return priors.known_noise(choice.sigma)
    family = choice.sigma_prior
    if family == "auto":
        family = "half_normal" if choice.sigma_prior_scale is not None else "exponential"
    if family == "flat":
        return priors.flat_noise()
    scale = (response_scale(y, "gaussian")[1] if choice.sigma_prior_scale is None
             else _positive(choice.sigma_prior_scale, "sigma prior scale"))
    if family == "half_normal":
        return priors.half_normal_noise(scale)
    if family == "half_cauchy":
        return priors.half_cauchy_noise(scale)
    if family == "half_t":
        df = STUDENT_T_DF if choice.sigma_prior_df is None else _positive(choice.sigma_prior_df, "sigma prior df")
        return priors.half_t_noise(df, scale)
    return priors.exponential_noise(1.0 / scale)


def tutorial_choice(choice: PriorChoice) -> PriorChoice:
    """Add the tutorial's known ``sigma = 0.1`` to ``prior="tutorial"``, unless the noise was chosen.

    Parameters
    ----------
    choice : PriorChoice
        A choice with ``prior="tutorial"``.

    Returns
    -------
    PriorChoice
        ``choice``, with ``sigma=0.1`` when it set no noise option.
    """
    import dataclasses

    return dataclasses.replace(choice, sigma=0.1) if not choice.touches_sigma else choice


FAMILIES = ("gaussian", "student_t", "horseshoe", "bernoulli", "poisson")


def model_family(text: str) -> str:
    """Read a model family name: ``"student-t"``, ``"normal"``, ``"robust"`` -> one of :data:`FAMILIES`.

    Parameters
    ----------
    text : str
        The name as given (case, ``-`` and aliases accepted).

    Returns
    -------
    str
        One of :data:`FAMILIES`.

    Raises
    ------
    BayeslinError
        An unknown name (one line listing the families).
    """
    name = str(text).strip().lower().replace("-", "_")
    name = {"normal": "gaussian", "linear": "gaussian", "t": "student_t", "robust": "student_t"}.get(name, name)
    if name not in FAMILIES:
        raise BayeslinError(f"unknown model family {text!r}: use one of {', '.join(FAMILIES)} (or a Model)")
    return name


def build_model(family: str, basis, phi: np.ndarray, y: np.ndarray, choice: PriorChoice | None = None, *,
                nu="learn", expected_nonzero: float = 2.0, slab_scale: float = 2.0, slab_df: float | None = 4.0):
    """A built-in :class:`~bayeslin_jax.core.model.Model` of ``family`` on ``basis`` with the priors of ``choice``
    resolved on the data (``phi: (n, d)``: the basis applied to the data; ``y: (n,)``).

    ``family``: ``gaussian`` (-> :func:`~bayeslin_jax.core.model.linear`), ``student_t`` (``nu``), ``horseshoe``
    (``expected_nonzero``, ``slab_scale``, ``slab_df``; its intercept scale is ``2.5 sd(y)`` around 0 unless the
    intercept scale is given), ``bernoulli`` or ``poisson`` (:func:`~bayeslin_jax.core.model.glm`).

    Parameters
    ----------
    family : str
        The family (:func:`model_family` reads it).
    basis : Polynomial or Design
        The basis (its ``feature_names`` name the prior lines).
    phi : (n, d) array
        The basis applied to the data.
    y : (n,) array
        The response.
    choice : PriorChoice, optional
        What the user asked for (default: the rule decides everything).
    nu : float or "learn"
        Student-t degrees of freedom.
    expected_nonzero : float
        Horseshoe: the expected number of non-zero slopes.
    slab_scale : float
        Horseshoe: the slab's scale.
    slab_df : float or None
        Horseshoe: the slab's degrees of freedom.

    Returns
    -------
    Model
        The model, its prior lines in ``info["priors"]`` (the horseshoe's: from its ``info``).

    Raises
    ------
    BayeslinError
        An unknown family, noise options for a GLM family, weight prior options for the horseshoe, and what
        :func:`weight_prior` and :func:`noise_prior` refuse.
    """
    import dataclasses

    from bayeslin_jax.core import model as models
    from bayeslin_jax.core.priors import ModelSpec

    family = model_family(family)
    choice = PriorChoice() if choice is None else choice
    if choice.prior == "tutorial":
        choice = tutorial_choice(choice)
    if family in GLM_LIKELIHOODS:
        if choice.touches_sigma:
            raise BayeslinError(f"the {family} family has no noise sd: drop sigma and the sigma prior options")
        prior, lines = weight_prior_with_text(phi, y, choice, family, basis.feature_names)
        model = models.glm(prior, basis, family)
        return dataclasses.replace(model, info={**model.info, "priors": lines})
    noise = noise_prior(y, choice)
    if family == "horseshoe":
        if choice.prior not in ("auto",) or choice.prior_scale is not None or choice.prior_mean is not None:
            raise BayeslinError("the horseshoe is the weight prior: drop the other weight prior options")
        loc, scale = response_scale(y, "gaussian")
        intercept_scale = (AUTOSCALE * float(np.hypot(loc, scale)) if choice.intercept_scale is None
                           else _positive(choice.intercept_scale, "intercept scale"))
        return models.horseshoe(basis, noise, expected_nonzero=expected_nonzero, num_points=int(np.shape(y)[-1]),
                                slab_scale=slab_scale, slab_df=slab_df, intercept_scale=intercept_scale)
    prior, lines = weight_prior_with_text(phi, y, choice, family, basis.feature_names)
    spec = ModelSpec(basis, prior, noise)
    model = models.linear(spec) if family == "gaussian" else models.student_t(spec, nu)
    return dataclasses.replace(model, info={**model.info, "priors": [*lines, _noise_text(noise)]})


def prior_lines(model) -> list[str]:
    """One human line per prior of a model (``age ~ Normal(0, 14.7)``, ``sigma ~ Exponential(0.013)``).

    Parameters
    ----------
    model : Model
        Any model.

    Returns
    -------
    list of str
        The weights' lines and the noise's; the horseshoe: its global and slab scales; a user model: one line
        saying its priors are its own.
    """
    if model.info.get("priors"):
        return list(model.info["priors"])
    spec = getattr(model, "spec", None)
    params = getattr(model, "params", {})
    prior = spec.prior if spec is not None else params.get("prior")
    noise = spec.noise if spec is not None else params.get("noise")
    lines: list[str] = []
    if model.name == "horseshoe":
        info = model.info
        lines += [f"{model.feature_names[0] if model.feature_names else 'w[0]'} ~ Normal(0, "
                  f"{_fmt(info['intercept_scale'])})",
                  f"other weights ~ regularized horseshoe (tau0 = {_fmt(info['tau0'])} sigma, slab scale "
                  f"{_fmt(info['slab_scale'])}, slab df {info['slab_df']})"]
    elif prior is not None:
        names = model.feature_names or tuple(f"w[{k}]" for k in range(int(np.shape(prior.mean)[-1])))
        lines += list(_prior_text(prior, names))
    if noise is not None:
        lines.append(_noise_text(noise))
    return lines or [f"priors: those written in model {model.name!r}"]


def _fmt(value: SupportsFloat) -> str:
    return f"{float(value):.4g}"


def _prior_text(prior, names) -> list[str]:
    if hasattr(prior, "text"):
        return list(prior.text(names))
    from bayeslin_jax.core.priors import IndependentNormal

    if isinstance(prior, IndependentNormal):
        return [f"{n} ~ Normal({_fmt(m)}, {_fmt(s)})" for n, m, s in zip(names, np.asarray(prior.mean),
                                                                        np.asarray(prior.scale), strict=True)]
    cov = np.asarray(prior.cov)
    return [f"{n} ~ Normal({_fmt(m)}, {_fmt(np.sqrt(c))}) (marginal of a multivariate normal)"
            for n, m, c in zip(names, np.asarray(prior.mean), np.diag(cov), strict=True)]


def _noise_text(noise) -> str:
    if hasattr(noise, "text"):
        return noise.text()
    from bayeslin_jax.core.priors import KnownNoise

    if isinstance(noise, KnownNoise):
        return f"sigma = {_fmt(noise.sigma)} (known)"
    return f"sigma ~ HalfNormal({_fmt(noise.scale)})"


def prior_moments(prior) -> tuple[np.ndarray, np.ndarray] | None:
    """Marginal prior mean and sd of each weight, where the prior has them.

    Parameters
    ----------
    prior : WeightPrior
        A weight prior.

    Returns
    -------
    tuple of numpy.ndarray or None
        ``(mean, sd)``, each ``(d,)`` (NaN sd for flat or heavy-tailed coordinates and for a centred intercept;
        those are not checked); None for a prior without them.
    """
    from bayeslin_jax.core.priors import IndependentNormal, MultivariateNormal

    if isinstance(prior, IndependentNormal):
        return np.asarray(prior.mean, dtype=float), np.asarray(prior.scale, dtype=float)
    if isinstance(prior, MultivariateNormal):
        return np.asarray(prior.mean, dtype=float), np.sqrt(np.diag(np.asarray(prior.cov, dtype=float)))
    family = getattr(prior, "family", None)
    if family is None:
        return None
    mean = np.asarray(prior.mean, dtype=float).copy()
    scale = np.asarray(prior.scale, dtype=float).copy()
    df = np.asarray(prior.df, dtype=float)
    sd = np.where(np.asarray(family) == "normal", scale,
                  np.where((np.asarray(family) == "student_t") & (df > 2), scale * np.sqrt(df / np.maximum(df - 2,
                                                                                                     1e-12)), np.nan))
    shift = getattr(prior, "shift", None)
    index = getattr(prior, "intercept", None)
    if index is not None and shift is not None and np.any(np.asarray(shift) != 0):
        sd[index] = np.nan  # the prior is on the centred intercept, not on w[intercept]: not checked
    return mean, sd


def prior_warnings(result) -> list[str]:
    """One line per prior that dominates the data or conflicts with it.

    Dominates: posterior sd above 0.9 prior sds; conflicts: posterior mean more than 4 prior sds from the prior
    mean, or a known sigma more than a factor 3 from the residual sd. Each line names the flag that changes it.

    Parameters
    ----------
    result : FitResult
        A :class:`~bayeslin_jax.workflows.fit.FitResult` of a built-in model.

    Returns
    -------
    list of str
        The lines, prefixed ``dataset i:`` in a batch; none for a user model (its priors are its own).
    """
    model = result.model
    spec = model.spec
    prior = spec.prior if spec is not None else model.params.get("prior")
    if prior is None or model.feature_site is None:
        return []
    moments = prior_moments(prior)
    lines: list[str] = []
    table = result.diagnostics()
    on = np.asarray(table["site"]) == model.feature_site
    names = np.asarray(table["parameter"])[on]
    post_mean = np.asarray(table["mean"])[:, on]
    post_sd = np.asarray(table["sd"])[:, on]
    prefix = (lambda i: f"dataset {i}: ") if result.batched else (lambda i: "")
    if moments is not None:
        mean, sd = moments
        for i in range(post_mean.shape[0]):
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = post_sd[i] / sd
                distance = np.abs(post_mean[i] - mean) / sd
            for k in np.flatnonzero(ratio > DOMINATES_RATIO):
                lines.append(f"{prefix(i)}the prior dominates the data for {names[k]} (posterior sd {post_sd[i, k]:.3g}"
                             f" is {ratio[k]:.0%} of the prior sd {sd[k]:.3g}): widen it with --prior-scale")
            for k in np.flatnonzero(distance > CONFLICT_SDS):
                lines.append(f"{prefix(i)}the data conflict with the prior for {names[k]} (posterior mean "
                             f"{post_mean[i, k]:.4g} is {distance[k]:.1f} prior sds from {mean[k]:.4g}): widen it with "
                             f"--prior-scale or use the default data-scaled priors")
    noise = spec.noise if spec is not None else model.params.get("noise")
    from bayeslin_jax.core.priors import KnownNoise

    if isinstance(noise, KnownNoise) and "observed_data" in result.tree:
        residual = _residual_sd(result)
        sigma = float(noise.sigma)
        for i, r in enumerate(residual):
            if r > SIGMA_CONFLICT_FACTOR * sigma or r < sigma / SIGMA_CONFLICT_FACTOR:
                lines.append(f"{prefix(i)}the known sigma {sigma:.4g} conflicts with the data (residual sd {r:.4g} at "
                             "the posterior mean): learn it (the default without --sigma and --prior tutorial) or "
                             "set it with --sigma")
    return lines


def _residual_sd(result) -> np.ndarray:
    """Per dataset, the sd of ``y - phi @ mean(w)`` (the Gaussian regression: known inputs in ``constant_data``)."""
    model = result.model
    y = np.asarray(result.tree["observed_data"]["y"], dtype=float)
    x = np.asarray(result.tree["constant_data"]["x"], dtype=float)
    w = result.draws(model.feature_site).astype(float)
    if not result.batched:
        x, y, w = x[None], y[None], w[None]
    phi = np.asarray(model.design(x), dtype=float)
    mean_w = w.reshape(w.shape[0], -1, w.shape[-1]).mean(axis=1)
    resid = y - np.einsum("bnd,bd->bn", phi, mean_w)
    return np.std(resid, axis=-1, ddof=min(phi.shape[-1], max(y.shape[-1] - 1, 0)))


__all__ = [
    "AUTOSCALE",
    "FAMILIES",
    "PriorChoice",
    "build_model",
    "family_name",
    "intercept_index",
    "model_family",
    "noise_prior",
    "prior_lines",
    "prior_warnings",
    "weight_prior",
]
