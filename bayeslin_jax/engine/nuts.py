"""One NUTS engine for B >= 1 datasets.

Every (dataset, chain) pair is an independent *run*: its own initial point, its own
warm-up adaptation (step size and mass matrix, Stan-style windows from NumPyro's
functional ``hmc`` kernel), then ``num_draws`` draws. All runs of a call execute inside one
compiled program:

* CPU: ``lax.map`` runs them one after the other (each run stops its trees as soon as it
  can; 2.1x faster than ``vmap`` at B = 100 and 4.3x at B = 1000 on 2 cores: ``engine`` vs
  ``engine_vmap`` in scripts/results/benchmark_cpu.json);
* GPU (``"auto"`` off CPU): the barrier-free finite state machine of :mod:`bayeslin_jax.engine.barrier_free`,
  the same NUTS kernel with one batched leapfrog per loop step, so no lane waits for another's tree
  (``"vmap"``, lock-step blocks of ``batch_size``, wastes 60-85 % of the lanes' steps). Its draws per
  run follow the same keys; vectorized rounding may differ with the number of lanes, so they are
  equal in distribution, not bitwise, across lane counts and device counts;
* several local devices: the datasets are split into contiguous blocks, one per device, and each
  device runs the same single-device program (dispatched asynchronously, so they work in
  parallel). One partitioned ``shard_map`` program would be compiled with different rounding in
  the gradient, and NUTS turns one-ulp differences into different chains; this way results are
  bit-identical for any device count.

Run ``r = i * chains + c`` uses the key ``fold_in(fold_in(root, i), c)`` with ``i`` the *global*
dataset index, so draws for dataset ``i`` do not depend on batch size, chunking or devices.

This module holds the settings, keys and the per-run kernel; the Gaussian model is one
:class:`~bayeslin_jax.core.model.Model` of the general driver
(:func:`bayeslin_jax.engine.sampling.sample_runs`), which lays out the runs of any model the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from numpyro.infer.hmc import hmc

from bayeslin_jax.core import keys as keyring
from bayeslin_jax.core.errors import BayeslinError

METHODS = ("auto", "map", "vmap", "barrier_free")
# Default lanes of the barrier-free FSM. CPU: the cost per lane-step stops falling at about 1000 lanes.
# GPU (H200, tutorial model): a loop step costs about 140 us + 1.6 ns per lane, so lanes are nearly free
# up to ~10^5: 10^5 datasets x 4 chains x 2000 iterations ran in 12.6 s on 131072 lanes (4.3 s for 4 x 10^4
# runs on 16384 lanes, 2.9 s on 40000): scripts/gpu_probe.py, results in scripts/results/gpu_probe_h200.json.
BARRIER_FREE_LANES = {"cpu": 1024, "default": 131072}
# step-size calibration (NutsConfig.calibrate_step_size): the last 15 % of the warm-up, in 3 rounds
CALIBRATION_ROUNDS = 3
CALIBRATION_SHARE = 15  # percent of num_warmup
MIN_CALIBRATED_WARMUP = 200  # rounds of >= 10 iterations
STAT_NAMES = ("diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate", "energy", "lp")
# per-run summaries of the draws' statistics (``draw_stats=False``): what studies and SBC keep
SUMMARY_STAT_NAMES = ("divergences", "max_tree_depth_hits", "mean_tree_depth", "mean_leapfrog", "mean_accept",
                      "step_size")


@dataclass(frozen=True)
class NutsConfig:  # numpydoc ignore=PR02
    """Sampler settings (hashable: part of the compiled program's identity).

    Every (dataset, chain) run warms up on its own (NumPyro's Stan-style windows: the step size by dual
    averaging throughout, the mass matrix in the slow windows), then records ``num_draws`` draws.

    Parameters
    ----------
    num_warmup : int, default 1000
        Warm-up (adaptation) iterations per run, >= 1.
    num_draws : int, default 1000
        Draws kept per run, >= 1.
    num_chains : int, default 4
        Chains per dataset, >= 1.
    target_accept : float, default 0.8
        Target mean acceptance probability of the step-size adaptation, in (0, 1).
    max_tree_depth : int, default 10
        Largest NUTS tree depth (at most ``2**max_tree_depth - 1`` leapfrog steps per draw), >= 1.
    dense_mass : bool, default False
        Adapt a dense mass matrix (diagonal by default, as NumPyro, PyMC and Stan do; dense costs ~1.7x per
        iteration on CPU for small d but pays off for strongly correlated posteriors).
    init_radius : float, default 2.0
        Initial points are uniform in ``[-init_radius, init_radius]`` in unconstrained space.
    method : {"auto", "map", "vmap", "barrier_free"}, default "auto"
        Layout of the runs: ``"auto"`` (``"map"`` on CPU, ``"barrier_free"`` elsewhere), ``"map"`` (runs one after
        another), ``"vmap"`` (runs in lock-step blocks of ``batch_size``; all at once if None) or
        ``"barrier_free"`` (runs as lanes of one finite state machine where no lane waits for another:
        :mod:`bayeslin_jax.engine.barrier_free`; ``batch_size`` lanes, default :data:`BARRIER_FREE_LANES`,
        further runs queue up). Not part of :meth:`identity`: the layout does not change what is sampled.
    batch_size : int, optional
        Runs vectorized together (``"vmap"``, ``"barrier_free"``); see :meth:`resolved_batch_size`.
    calibrate_step_size : bool, default False
        End the warm-up with 3 rounds (the last 15 % of ``num_warmup``, which must be >= 200) that hold the mass
        matrix and step size fixed and move the step size to where the measured acceptance meets
        ``target_accept`` (:func:`calibrated_step_size`). NumPyro's (Stan's) dual averaging, the default, ends
        well above its target (0.92 achieved for 0.8 on the tutorial model): its averaged log step sits on the
        safe side of a steep acceptance curve. Calibrated, the tutorial model needs about a third fewer
        leapfrogs per draw for more ESS, but on a funnel (a hierarchical model) or with learned noise that
        safety margin matters and divergences rise (``scripts/results/calibration_check_cpu.json``), as they did
        on one ill-conditioned degree-5 design (README); so it is opt-in.

    Raises
    ------
    BayeslinError
        A count below 1 or not an integer, ``target_accept`` outside (0, 1), an unknown ``method``, a
        ``batch_size`` below 1, or ``calibrate_step_size`` with ``num_warmup < 200``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> config = bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2)
    >>> config.num_chains, config.method
    (2, 'auto')
    >>> config.warmup_phases()  # (adaptive, calibration rounds, round length)
    (100, 0, 0)
    >>> bl.NutsConfig(num_warmup=400, calibrate_step_size=True).warmup_phases()
    (340, 3, 20)
    >>> bl.NutsConfig(target_accept=1.5)
    Traceback (most recent call last):
        ...
    bayeslin_jax.core.errors.BayeslinError: target_accept must lie in (0, 1), got 1.5
    """

    num_warmup: int = 1000
    num_draws: int = 1000
    num_chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    init_radius: float = 2.0
    method: str = "auto"
    batch_size: int | None = None
    calibrate_step_size: bool = False

    def __post_init__(self) -> None:
        """Check the settings: :class:`BayeslinError` on the first invalid one."""
        for name in ("num_warmup", "num_draws", "num_chains", "max_tree_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:  # num_warmup 0 would leave NUTS unadapted
                raise BayeslinError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise BayeslinError(f"target_accept must lie in (0, 1), got {self.target_accept}")
        if self.method not in METHODS:
            raise BayeslinError(f"method must be one of {', '.join(map(repr, METHODS))}, got {self.method!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise BayeslinError(f"batch_size must be positive, got {self.batch_size}")
        if not isinstance(self.calibrate_step_size, bool):
            raise BayeslinError(f"calibrate_step_size must be True or False, got {self.calibrate_step_size!r}")
        if self.calibrate_step_size and self.num_warmup < MIN_CALIBRATED_WARMUP:
            raise BayeslinError(
                f"calibrate_step_size needs num_warmup >= {MIN_CALIBRATED_WARMUP}, got {self.num_warmup}"
            )

    def warmup_phases(self) -> tuple[int, int, int]:
        """Split the warm-up into NumPyro's adaptation and the step-size calibration rounds.

        NumPyro's Stan-style adaptation runs the first ``adaptive`` iterations; with ``calibrate_step_size``
        the remaining ``rounds * round_length`` iterations hold the mass matrix and each round's step size
        fixed and end with :func:`calibrated_step_size` of the round's mean acceptance.

        Returns
        -------
        adaptive : int
            Iterations of NumPyro's adaptation (``num_warmup`` without calibration).
        rounds : int
            Calibration rounds (3 with ``calibrate_step_size``, else 0).
        round_length : int
            Iterations per calibration round (0 without calibration).
        """
        if not self.calibrate_step_size:
            return self.num_warmup, 0, 0
        round_length = self.num_warmup * CALIBRATION_SHARE // (100 * CALIBRATION_ROUNDS)
        return self.num_warmup - CALIBRATION_ROUNDS * round_length, CALIBRATION_ROUNDS, round_length

    def identity(self) -> dict:
        """Return the settings that change the draws (all but the layout ``method`` and ``batch_size``).

        Returns
        -------
        dict
            ``{field: value}``: what stores record to refuse resuming with other settings.
        """
        return {k: v for k, v in asdict(self).items() if k not in ("method", "batch_size")}

    def resolved_method(self) -> str:
        """Return ``method`` with ``"auto"`` resolved for the default backend.

        Returns
        -------
        str
            ``"map"``, ``"vmap"`` or ``"barrier_free"`` (``"auto"``: ``"map"`` on CPU, else ``"barrier_free"``).
        """
        if self.method != "auto":
            return self.method
        return "map" if jax.default_backend() == "cpu" else "barrier_free"

    def resolved_batch_size(self, num_runs: int) -> int | None:
        """Return how many runs are vectorized together for ``num_runs`` runs on one device.

        ``"barrier_free"`` without ``batch_size``: :data:`BARRIER_FREE_LANES` lanes at most (the runs
        beyond queue up; fewer lanes than runs keep the lanes busy until the queue is empty).

        Parameters
        ----------
        num_runs : int
            (dataset, chain) runs of the device.

        Returns
        -------
        int or None
            Runs (lanes) per vectorized block, at most ``num_runs``; None for ``"map"`` (one run at a time).
        """
        method = self.resolved_method()
        if method == "map":
            return None
        if method == "barrier_free" and self.batch_size is None:
            return min(BARRIER_FREE_LANES.get(jax.default_backend(), BARRIER_FREE_LANES["default"]), num_runs)
        return min(self.batch_size or num_runs, num_runs)


class NutsResult(NamedTuple):  # numpydoc ignore=PR02
    """Draws and sampler statistics for B datasets.

    Parameters
    ----------
    samples : dict of str to array
        ``{"w": (B, C, S, d)}`` plus ``{"sigma": (B, C, S)}`` for unknown noise (any model:
        ``{site: (B, C, S, *shape)}``).
    stats : dict of str to array
        Each of :data:`STAT_NAMES` with shape ``(B, C, S)``, or with ``draw_stats=False`` each of
        :data:`SUMMARY_STAT_NAMES` with shape ``(B, C)``.
    lanes : tuple of LaneCounts, optional
        ``method="barrier_free"`` only: one :class:`~bayeslin_jax.engine.barrier_free.LaneCounts` per device
        (leapfrog counts per lane, for :func:`~bayeslin_jax.engine.barrier_free.lane_utilization`); None
        otherwise. Not per dataset: to select datasets, slice ``samples`` and ``stats`` (e.g.
        ``result._replace(samples=..., stats=...)``).
    """

    samples: dict[str, Array]
    stats: dict[str, Array]
    lanes: tuple | None = None


def initial_point(key: Array, latent: tuple[tuple[str, tuple[int, ...]], ...], dtype, config: NutsConfig
                  ) -> tuple[dict[str, Array], Array]:
    """Draw a run's initial point, uniform in ``[-init_radius, init_radius]`` (unconstrained), from its key.

    Parameters
    ----------
    key : key array, shape ``()``
        The run's key (:func:`run_keys`).
    latent : tuple of (str, tuple of int) pairs
        ``(site, unconstrained shape)`` pairs (:attr:`~bayeslin_jax.engine.sampling.ModelSites.latent`).
    dtype : dtype
        Of the initial point.
    config : NutsConfig
        Its ``init_radius``.

    Returns
    -------
    z0 : dict of str to array
        ``{site: shape}`` initial point.
    sample_key : key array, shape ``()``
        The key the sampler continues with.
    """
    init_key, sample_key = jax.random.split(key)
    shapes = dict(latent)
    init_keys = dict(zip(sorted(shapes), jax.random.split(init_key, len(shapes)), strict=True))
    z0 = {
        name: jax.random.uniform(init_keys[name], shape, dtype, -config.init_radius, config.init_radius)
        for name, shape in shapes.items()
    }
    return z0, sample_key


def tree_depth(num_steps: Array) -> Array:
    """Return the depth of a NUTS trajectory of ``num_steps`` leapfrog steps, as the engines record it.

    Parameters
    ----------
    num_steps : int array, shape ``(...)``
        Leapfrog steps of each trajectory.

    Returns
    -------
    int32 array, shape ``(...)``
        ``ceil(log2(num_steps + 1))``.
    """
    return jnp.ceil(jnp.log2(num_steps + 1.0)).astype(jnp.int32)


def calibrated_step_size(step_size: Array, mean_accept: Array, target: float) -> Array:
    """The step size whose acceptance rate should be ``target``, from one measured at ``step_size``.

    The leapfrog energy error has standard deviation proportional to ``step_size**2`` (asymptotically,
    Beskos et al. 2013, "Optimal tuning of the hybrid Monte Carlo algorithm"), and an energy error
    ``N(sigma**2 / 2, sigma**2)`` is accepted with mean probability ``2 Phi(-sigma / 2)``. So
    ``step_size**2`` scales as ``-Phi^-1(accept / 2)``: the step where that curve through the measurement meets
    ``target``, its factor clipped to [1/2, 2] (the measured rate is clipped to [0.001, 0.999] first, NaN counts
    as 0) and the step to the positive finite range, as NumPyro's adapter clips it.

    Parameters
    ----------
    step_size : float array, shape ``(...)``
        The step size the acceptance was measured at.
    mean_accept : float array, shape ``(...)``
        The measured mean acceptance probability.
    target : float
        The acceptance probability to aim for (``NutsConfig.target_accept``).

    Returns
    -------
    float array, shape ``(...)``
        The calibrated step size, in ``step_size``'s dtype.
    """
    accept = jnp.clip(jnp.nan_to_num(mean_accept, nan=0.0), 1e-3, 1 - 1e-3)
    spread = lambda a: -jax.scipy.special.ndtri(a / 2)  # noqa: E731  sigma / 2 at acceptance a
    new = step_size * jnp.clip(jnp.sqrt(spread(target) / spread(accept)), 0.5, 2.0).astype(step_size.dtype)
    finfo = jnp.finfo(step_size.dtype)
    return jnp.clip(new, finfo.tiny, finfo.max)


def warmup(potential_fn_gen, z0: dict, key: Array, config: NutsConfig, model_args: tuple,
           model_kwargs: dict | None = None):
    """Run one chain's ``config.num_warmup`` warm-up iterations of NumPyro's NUTS.

    NumPyro's Stan-style adaptation (:meth:`NutsConfig.warmup_phases`), then, with ``calibrate_step_size``,
    the calibration rounds: the kernel no longer adapts, each round runs at a fixed step size and ends with
    :func:`calibrated_step_size` of its mean acceptance.

    Parameters
    ----------
    potential_fn_gen : callable
        ``potential_fn_gen(*model_args, **model_kwargs)`` gives the potential ``U(z)`` (NumPyro's ``hmc`` form).
    z0 : dict of str to array
        Unconstrained initial point ``{site: shape}``.
    key : key array, shape ``()``
        The sampler's key (:func:`initial_point`).
    config : NutsConfig
        Warm-up length, target acceptance, tree depth, mass matrix, calibration.
    model_args : tuple
        Positional arguments of ``potential_fn_gen``.
    model_kwargs : dict, optional
        Keyword arguments of ``potential_fn_gen``.

    Returns
    -------
    state : numpyro.infer.hmc.HMCState
        NumPyro's state at the end of warm-up.
    sample_kernel : callable
        The kernel to draw with.
    n_steps : int array, shape ``(num_warmup,)``
        The warm-up's leapfrog steps per iteration.
    """
    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    adaptive, rounds, round_length = config.warmup_phases()
    state = init_kernel(
        z0,
        adaptive,
        dense_mass=config.dense_mass,
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        model_args=model_args,
        model_kwargs=model_kwargs,
        rng_key=key,
    )

    def _warmup_step(carry, _):  # past NumPyro's `adaptive` iterations its kernel no longer adapts
        carry = sample_kernel(carry, model_args=model_args, model_kwargs=model_kwargs)
        return carry, (carry.num_steps, carry.accept_prob)

    state, (n_steps, _) = jax.lax.scan(_warmup_step, state, length=adaptive)
    counts = [n_steps]
    for _ in range(rounds):
        state, (n_steps, accept) = jax.lax.scan(_warmup_step, state, length=round_length)
        step_size = calibrated_step_size(state.adapt_state.step_size, accept.mean(), config.target_accept)
        state = state._replace(adapt_state=state.adapt_state._replace(step_size=step_size))
        counts.append(n_steps)
    return state, sample_kernel, jnp.concatenate(counts)


def warmup_and_draw(potential_fn_gen, z0: dict, key: Array, config: NutsConfig, model_args: tuple,
                    model_kwargs: dict | None = None) -> tuple[dict, dict]:
    """Run one chain of NumPyro's NUTS: :func:`warmup`, then ``config.num_draws`` draws.

    Shared by every model's engine.

    Parameters
    ----------
    potential_fn_gen : callable
        ``potential_fn_gen(*model_args, **model_kwargs)`` gives the potential ``U(z)``.
    z0 : dict of str to array
        Unconstrained initial point ``{site: shape}``.
    key : key array, shape ``()``
        The sampler's key (:func:`initial_point`).
    config : NutsConfig
        Sampler settings.
    model_args : tuple
        Positional arguments of ``potential_fn_gen``.
    model_kwargs : dict, optional
        Keyword arguments of ``potential_fn_gen``.

    Returns
    -------
    z : dict of str to array
        The unconstrained draws ``{site: (S, *shape)}``.
    stats : dict of str to array
        The per-draw statistics of :data:`STAT_NAMES`, each ``(S,)``.
    """
    state, sample_kernel, _ = warmup(potential_fn_gen, z0, key, config, model_args, model_kwargs)

    def _draw_step(carry, _):
        carry = sample_kernel(carry, model_args=model_args, model_kwargs=model_kwargs)
        stats = {
            "diverging": carry.diverging,
            "n_steps": carry.num_steps,
            "tree_depth": tree_depth(carry.num_steps),
            "step_size": carry.adapt_state.step_size,
            "acceptance_rate": carry.accept_prob,
            "energy": carry.energy,
            "lp": -carry.potential_energy,
        }
        return carry, (carry.z, stats)

    _, (z, stats) = jax.lax.scan(_draw_step, state, length=config.num_draws)
    return z, stats


def summarize_draw_stats(stats: dict[str, Array], max_tree_depth: int) -> dict[str, Array]:
    """Reduce per-draw statistics ``{name: (..., S)}`` (:data:`STAT_NAMES`) to per-run summaries ``(...)``.

    Runs inside the engine for ``draw_stats=False``, so the per-draw arrays never leave the device.

    Parameters
    ----------
    stats : dict of str to array
        Each of :data:`STAT_NAMES`, shape ``(..., S)`` (draws last).
    max_tree_depth : int
        ``NutsConfig.max_tree_depth``: a draw at this depth counts as a hit.

    Returns
    -------
    dict of str to array
        The summaries (:data:`SUMMARY_STAT_NAMES`), each ``(...)``: ``divergences`` and ``max_tree_depth_hits``
        (int32 counts), ``mean_tree_depth``, ``mean_leapfrog`` and ``mean_accept`` (means over draws) and
        ``step_size`` (the adapted step size, the last draw's).
    """
    return {
        "divergences": stats["diverging"].sum(-1, dtype=jnp.int32),
        "max_tree_depth_hits": (stats["tree_depth"] >= max_tree_depth).sum(-1, dtype=jnp.int32),
        "mean_tree_depth": stats["tree_depth"].mean(-1, dtype=stats["step_size"].dtype),
        "mean_leapfrog": stats["n_steps"].mean(-1, dtype=stats["step_size"].dtype),
        "mean_accept": stats["acceptance_rate"].mean(-1),
        "step_size": stats["step_size"][..., -1],
    }


def run_keys(seed: int | Array, dataset_indices: Array, num_chains: int) -> Array:
    """Return the keys of every (dataset, chain) run, from global dataset indices.

    Run ``r = i * C + c`` gets ``fold_in(fold_in(root, i), c)`` with ``root`` the ``INFER`` stream of ``seed``.
    Compiled (as :func:`chain_keys`): traced eagerly, the vmapped ``fold_in`` calls cost ~5-10 ms per call,
    which was most of the engine's fixed cost per call (scripts/benchmark.py ``iterations``). Integer hashes:
    the same keys either way.

    Parameters
    ----------
    seed : int or key array
        Root of the randomness.
    dataset_indices : int array, shape ``(B,)``
        Global dataset indices.
    num_chains : int
        Chains per dataset ``C`` (static).

    Returns
    -------
    key array, shape ``(B * C,)``
        One key per run, dataset-major.
    """
    root = jax.random.key(seed) if isinstance(seed, int) else seed  # as keys.stream_key, outside the trace
    return _run_keys(root, jnp.asarray(dataset_indices, dtype=jnp.uint32), num_chains)


@partial(jax.jit, static_argnames=("num_chains",))
def _run_keys(root: Array, dataset_indices: Array, num_chains: int) -> Array:
    return chain_keys(keyring.dataset_keys(root, keyring.INFER, dataset_indices), num_chains)


@partial(jax.jit, static_argnames=("num_chains",))
def chain_keys(per_dataset: Array, num_chains: int) -> Array:
    """Return the keys of every (dataset, chain) run from one key per dataset.

    Parameters
    ----------
    per_dataset : key array, shape ``(B,)``
        One key per dataset.
    num_chains : int
        Chains per dataset ``C`` (static).

    Returns
    -------
    key array, shape ``(B * C,)``
        ``fold_in(per_dataset[i], c)`` for run ``i * C + c``.
    """
    chains = jnp.arange(num_chains, dtype=jnp.uint32)
    per_run = jax.vmap(lambda k: jax.vmap(lambda c: jax.random.fold_in(k, c))(chains))(per_dataset)
    return per_run.reshape(-1)
