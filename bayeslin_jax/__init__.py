"""bayeslin_jax: Bayesian linear regression on JAX + NumPyro, batched over many datasets."""

__version__ = "0.1.0"

# numpyro must be imported before arviz_base (which lazily imports numpyro itself); otherwise
# `numpyro.distributions.distribution` can end up unset and HalfNormal noise fails to sample.
import numpyro  # noqa: F401
