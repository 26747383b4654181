"""bayeslin_jax: Bayesian linear regression on JAX + NumPyro, batched over many datasets."""

__version__ = "0.1.0"
