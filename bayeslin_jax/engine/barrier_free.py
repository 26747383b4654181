"""Barrier-free vectorized NUTS: every (dataset, chain) run is a lane of one finite state machine.

Lock-step ``vmap`` of NUTS makes every lane of a block wait for the deepest tree in the block (the
batched ``while`` runs until *all* lanes stop). Here (after Dance, Glaser, Orbanz & Adams, "Efficiently
Vectorized MCMC on Modern Accelerators", ICML 2025, arXiv 2503.17405) the whole sampler -- warm-up,
tree doublings, sub-trees, iterations -- is flattened into ONE ``lax.while_loop`` whose body does
exactly one leapfrog step per lane (one batched gradient of the potential) and then that lane's own
bookkeeping with selects:

* the leaf is merged into the sub-tree under construction (multinomial, uniform within a sub-tree);
  the U-turn of every sub-tree ending at the new leaf is checked from the checkpoint arrays of the
  iterative formulation (NumPyro's ``_iterative_build_subtree`` / ``_is_iterative_turning``);
* a finished sub-tree is merged into the trajectory (biased progressive transition, generalized U-turn
  over the whole trajectory, divergence = energy error > 1000, ``max_tree_depth``), and the next
  doubling direction is drawn;
* a finished trajectory ends the iteration: warm-up adaptation (NumPyro's ``warmup_adapter``: Stan's
  windows, dual averaging of the step size, Welford (co)variance for a diagonal or dense mass matrix),
  the draw and its statistics are recorded in the sampling phase, a new momentum is drawn;
* a lane that finished all its iterations idles (masked) until the last lane finishes.

It is the same Markov kernel as NumPyro's NUTS (``numpyro.infer.hmc.hmc(algo="NUTS")``, the ``map``
engine), built from NumPyro's own pieces (``_build_basetree``, ``_combine_tree``, ``_is_turning``,
``_leaf_idx_to_ckpt_idxs``, ``velocity_verlet``, ``euclidean_kinetic_energy``, ``warmup_adapter``), and it
even consumes the PRNG keys in NumPyro's order: with the same run key, a lane follows the ``map``
engine's chain up to floating-point rounding (which NUTS can eventually amplify into a different
path, so equality is checked statistically, not bitwise). The initial step size is 1.0 without the
``find_reasonable_step_size`` heuristic, as in the ``map`` engine (NumPyro's ``hmc`` default).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import momentum_generator
from numpyro.infer.hmc_util import (
    HMCAdaptState,
    IntegratorState,
    TreeInfo,
    _build_basetree,
    _combine_tree,
    _get_leaf,
    _is_turning,
    _leaf_idx_to_ckpt_idxs,
    euclidean_kinetic_energy,
    velocity_verlet,
    warmup_adapter,
)
from numpyro.infer.util import constrain_fn

from bayeslin_jax.engine.nuts import STAT_NAMES, NutsConfig, initial_point, potential_fn_gen
from bayeslin_jax.models import linear_regression
from bayeslin_jax.priors import Noise, WeightPrior

MAX_DELTA_ENERGY = 1000.0  # NumPyro's divergence threshold on the energy error


def _int():
    """NumPyro's integer dtype (int64 under x64)."""
    return jnp.result_type(int)


class LaneCounts(NamedTuple):
    """Per-lane leapfrog counts of one FSM block, for lane utilization.

    ``warmup_steps, sampling_steps: (L,)`` leapfrog steps each lane took in warm-up / sampling;
    ``loop_steps: ()`` steps the block's loop executed (every lane executes each of them, useful or not).
    """

    warmup_steps: Array
    sampling_steps: Array
    loop_steps: Array


class _Lane(NamedTuple):
    """The state of one lane (one (dataset, chain) run); vmapped over lanes."""

    i: Array  # iterations finished
    z: Array  # current position (D,), flat unconstrained
    pe: Array
    z_grad: Array
    rng_key: Array  # the chain's key (NumPyro's HMCState.rng_key), raw uint32
    adapt: HMCAdaptState
    energy0: Array  # Hamiltonian at the start of the trajectory
    tree: TreeInfo  # the trajectory so far
    tree_key: Array  # build_tree's loop key
    going_right: Array  # direction of the current doubling
    transition_key: Array  # key that merges the current sub-tree into the trajectory
    sub: TreeInfo  # the sub-tree under construction
    sub_key: Array
    r_ckpts: Array  # (max_tree_depth, D)
    r_sum_ckpts: Array  # (max_tree_depth, D)
    warmup_steps: Array
    sampling_steps: Array


def _select(pred: Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _typed_tree(tree: TreeInfo, dtype) -> TreeInfo:
    """Fixed dtypes for the loop carry (NumPyro builds some fields from Python scalars)."""
    return tree._replace(
        depth=jnp.asarray(tree.depth, _int()),
        weight=jnp.asarray(tree.weight, dtype),
        turning=jnp.asarray(tree.turning, bool),
        diverging=jnp.asarray(tree.diverging, bool),
        sum_accept_probs=jnp.asarray(tree.sum_accept_probs, dtype),
        num_proposals=jnp.asarray(tree.num_proposals, _int()),
    )


def _iterative_turning(inverse_mass_matrix, r, r_sum, r_ckpts, r_sum_ckpts, idx_min, idx_max) -> Array:
    """NumPyro's ``_is_iterative_turning`` without its loop: any checkpoint in ``[idx_min, idx_max]`` turns."""
    idx = jnp.arange(r_ckpts.shape[0])
    subtree_r_sum = r_sum - r_sum_ckpts + r_ckpts
    turns = jax.vmap(lambda r_left, r_sub: _is_turning(inverse_mass_matrix, r_left, r, r_sub))(r_ckpts, subtree_r_sum)
    return jnp.any(turns & (idx >= idx_min) & (idx <= idx_max))


def _begin_iteration(z, pe, z_grad, rng_key, adapt: HMCAdaptState):
    """NumPyro's ``sample_kernel`` + ``build_tree`` set-up: new momentum, trajectory of one point."""
    rng_key, key_momentum, key_transition = jax.random.split(rng_key, 3)
    r = momentum_generator(z, adapt.mass_matrix_sqrt, key_momentum)
    energy0 = pe + euclidean_kinetic_energy(adapt.inverse_mass_matrix, r)
    zero = jnp.zeros((), z.dtype)
    tree = TreeInfo(z, r, z_grad, z, r, z_grad, z, pe, z_grad, energy0, 0, zero, r, False, False, zero, 0)
    return rng_key, energy0, _typed_tree(tree, z.dtype), key_transition


def _begin_doubling(tree: TreeInfo, key: Array):
    """One iteration of ``build_tree``'s loop up to the sub-tree: direction and keys."""
    key, direction_key, doubling_key = jax.random.split(key, 3)
    going_right = jax.random.bernoulli(direction_key)
    sub_key, transition_key = jax.random.split(doubling_key)
    return key, going_right, transition_key, tree._replace(num_proposals=jnp.zeros((), _int())), sub_key


def _lane_init(key, phi, y, prior, noise, *, config: NutsConfig, adapter) -> tuple[_Lane, Array]:
    """A lane at the start of its first trajectory, and its empty record ``(S, D + len(STAT_NAMES))``."""
    z0, sample_key = initial_point(key, phi, noise, config)
    z, unravel = ravel_pytree(z0)
    potential = _flat_potential(phi, y, prior, noise, unravel)
    pe, z_grad = jax.value_and_grad(potential)(z)
    raw = jax.random.key_data(sample_key)
    key_hmc, key_adapt, _ = jax.random.split(raw, 3)  # the third one is NumPyro's unused initial momentum
    adapt = adapter[0](IntegratorState(z, None, pe, z_grad), key_adapt, jnp.ones((), z.dtype))
    rng_key, energy0, tree, key_transition = _begin_iteration(z, pe, z_grad, key_hmc, adapt)
    tree_key, going_right, transition_key, sub, sub_key = _begin_doubling(tree, key_transition)
    ckpts = jnp.zeros((config.max_tree_depth, z.shape[0]), z.dtype)
    lane = _Lane(
        jnp.zeros((), _int()), z, pe, z_grad, rng_key, adapt, energy0, tree, tree_key, going_right, transition_key,
        sub, sub_key, ckpts, ckpts, jnp.zeros((), _int()), jnp.zeros((), _int()),
    )  # fmt: skip
    return lane, jnp.zeros((config.num_draws, z.shape[0] + len(STAT_NAMES)), z.dtype)


def _flat_potential(phi, y, prior, noise, unravel):
    potential = potential_fn_gen(phi, y, prior, noise)
    return lambda flat: potential(unravel(flat))


def _lane_step(lane: _Lane, record: Array, phi, y, prior, noise, *, config: NutsConfig, adapter, unravel):
    """One leapfrog step of one lane, then its bookkeeping (vmapped over lanes: one batched gradient)."""
    total = config.num_warmup + config.num_draws
    active = lane.i < total
    adapt = lane.adapt
    inv_mm, step_size = adapt.inverse_mass_matrix, adapt.step_size
    _, vv_update = velocity_verlet(_flat_potential(phi, y, prior, noise, unravel), euclidean_kinetic_energy)
    dtype = lane.z.dtype

    # ---- one leapfrog: the next leaf of the sub-tree (NumPyro's _iterative_build_subtree body)
    sub_key, leaf_key = jax.random.split(lane.sub_key)
    z, r, z_grad = _get_leaf(lane.sub, lane.going_right)
    leaf = _build_basetree(
        vv_update, euclidean_kinetic_energy, z, r, z_grad, inv_mm, step_size, lane.going_right, lane.energy0,
        MAX_DELTA_ENERGY,
    )  # fmt: skip
    leaf = _typed_tree(leaf, dtype)
    merged = _typed_tree(_combine_tree(lane.sub, leaf, inv_mm, lane.going_right, leaf_key, False), dtype)
    sub = _select(lane.sub.num_proposals == 0, leaf, merged)
    leaf_idx = lane.sub.num_proposals
    idx_min, idx_max = _leaf_idx_to_ckpt_idxs(leaf_idx)
    even = leaf_idx % 2 == 0
    r_ckpts = jnp.where(even, lane.r_ckpts.at[idx_max].set(leaf.r_right), lane.r_ckpts)
    r_sum_ckpts = jnp.where(even, lane.r_sum_ckpts.at[idx_max].set(sub.r_sum), lane.r_sum_ckpts)
    sub_turning = _iterative_turning(inv_mm, leaf.r_right, sub.r_sum, r_ckpts, r_sum_ckpts, idx_min, idx_max)
    sub_done = (sub.num_proposals >= 2**lane.tree.depth) | sub_turning | sub.diverging

    # ---- a finished sub-tree joins the trajectory (NumPyro's _double_tree / build_tree loop)
    sub_final = sub._replace(depth=lane.tree.depth, turning=sub_turning)
    tree = _typed_tree(_combine_tree(lane.tree, sub_final, inv_mm, lane.going_right, lane.transition_key, True), dtype)
    keep_building = (tree.depth < config.max_tree_depth) & ~tree.turning & ~tree.diverging
    iter_end = sub_done & ~keep_building

    # ---- a finished trajectory ends the iteration (NumPyro's sample_kernel tail)
    accept_prob = tree.sum_accept_probs / tree.num_proposals
    z_new = tree.z_proposal
    warm = lane.i < config.num_warmup
    adapted = adapter[1](
        lane.i, accept_prob, IntegratorState(z_new, None, tree.z_proposal_pe, tree.z_proposal_grad), adapt
    )
    adapt_new = _select(iter_end & warm, adapted, adapt)
    slot = jnp.where(active & iter_end & ~warm, lane.i - config.num_warmup, config.num_draws)  # out of range: no write
    draw_stats = {
        "diverging": tree.diverging,
        "n_steps": tree.num_proposals,
        "tree_depth": jnp.ceil(jnp.log2(tree.num_proposals + 1.0)).astype(jnp.int32),
        "step_size": adapt_new.step_size,
        "acceptance_rate": accept_prob,
        "energy": tree.z_proposal_energy,
        "lp": -tree.z_proposal_pe,
    }
    # one row per draw: the position, then the statistics (one scatter per step, not eight)
    row = jnp.concatenate([z_new, jnp.stack([jnp.asarray(draw_stats[k], dtype) for k in STAT_NAMES])])
    record = record.at[slot].set(row, mode="drop")
    chain = _select(iter_end, (z_new, tree.z_proposal_pe, tree.z_proposal_grad), (lane.z, lane.pe, lane.z_grad))
    rng_key, energy0, fresh, key_transition = _begin_iteration(*chain, lane.rng_key, adapt_new)

    # ---- the next doubling: of the same trajectory, or of a new one
    base = _select(iter_end, fresh, tree)
    tree_key, going_right, transition_key, sub_init, sub_key_init = _begin_doubling(
        base, jnp.where(iter_end, key_transition, lane.tree_key)
    )
    new = _Lane(
        i=lane.i + iter_end.astype(_int()),
        z=chain[0],
        pe=chain[1],
        z_grad=chain[2],
        rng_key=jnp.where(iter_end, rng_key, lane.rng_key),
        adapt=adapt_new,
        energy0=jnp.where(iter_end, energy0, lane.energy0),
        tree=_select(sub_done, base, lane.tree),
        tree_key=jnp.where(sub_done, tree_key, lane.tree_key),
        going_right=jnp.where(sub_done, going_right, lane.going_right),
        transition_key=jnp.where(sub_done, transition_key, lane.transition_key),
        sub=_select(sub_done, sub_init, sub),
        sub_key=jnp.where(sub_done, sub_key_init, sub_key),
        r_ckpts=r_ckpts,
        r_sum_ckpts=r_sum_ckpts,
        warmup_steps=lane.warmup_steps + warm.astype(_int()),
        sampling_steps=lane.sampling_steps + (~warm).astype(_int()),
    )
    return _select(active, new, lane), record


def _run_lanes(keys, phi, y, prior: WeightPrior, noise: Noise, *, config: NutsConfig):
    """One FSM over L lanes. ``keys: (L,)``, ``phi: (L, n, d)``, ``y: (L, n)``."""
    adapter = warmup_adapter(config.num_warmup, dense_mass=config.dense_mass, target_accept_prob=config.target_accept)
    init = partial(_lane_init, prior=prior, noise=noise, config=config, adapter=adapter)
    lanes, record = jax.vmap(init)(keys, phi, y)
    z0, _ = initial_point(keys[0], phi[0], noise, config)
    unravel = ravel_pytree(z0)[1]
    step = jax.vmap(partial(_lane_step, prior=prior, noise=noise, config=config, adapter=adapter, unravel=unravel))
    total = config.num_warmup + config.num_draws

    def cond(carry):
        return jnp.any(carry[0].i < total)

    def body(carry):
        lanes, record, count = carry
        return *step(lanes, record, phi, y), count + 1

    lanes, record, loop_steps = jax.lax.while_loop(cond, body, (lanes, record, jnp.zeros((), _int())))

    def constrain(draws, phi_l, y_l):
        args = (phi_l, y_l, prior, noise)
        return jax.vmap(lambda flat: constrain_fn(linear_regression, args, {}, unravel(flat)))(draws)

    dim = record.shape[-1] - len(STAT_NAMES)
    samples = jax.vmap(constrain)(record[..., :dim], phi, y)
    int_type = {"diverging": bool, "n_steps": _int(), "tree_depth": jnp.int32}
    stats = {k: record[..., dim + j].astype(int_type.get(k, record.dtype)) for j, k in enumerate(STAT_NAMES)}
    return samples, stats, LaneCounts(lanes.warmup_steps, lanes.sampling_steps, loop_steps)


def run_block(keys, phi, y, prior: WeightPrior, noise: Noise, *, config: NutsConfig, batch_size: int | None):
    """All runs of one device: FSM blocks of ``batch_size`` lanes (all at once if None), one after another.

    ``keys: (R,)``, ``phi: (R, n, d)``, ``y: (R, n)`` -> samples ``(R, S, ...)``, stats ``(R, S)`` and
    :class:`LaneCounts` with lane counts ``(num_blocks, block_size)`` (zero for padding lanes) and
    ``loop_steps: (num_blocks,)``.
    """
    num_runs = keys.shape[0]
    size = min(batch_size or num_runs, num_runs)
    num_blocks = -(-num_runs // size)
    run = partial(_run_lanes, prior=prior, noise=noise, config=config)
    if num_blocks == 1:
        samples, stats, counts = run(keys, phi, y)
        return samples, stats, jax.tree.map(lambda a: a[None], counts)
    # padding lanes repeat run 0; their draws are dropped and their steps count as idle
    take = np.concatenate([np.arange(num_runs), np.zeros(num_blocks * size - num_runs, dtype=int)])
    take = take.reshape(num_blocks, size)
    samples, stats, counts = jax.lax.map(lambda xs: run(*xs), (keys[take], phi[take], y[take]))
    real = jnp.asarray(np.arange(num_blocks * size).reshape(num_blocks, size) < num_runs)
    flat = lambda a: a.reshape(-1, *a.shape[2:])[:num_runs]  # noqa: E731
    counts = counts._replace(
        warmup_steps=jnp.where(real, counts.warmup_steps, 0), sampling_steps=jnp.where(real, counts.sampling_steps, 0)
    )
    return jax.tree.map(flat, samples), jax.tree.map(flat, stats), counts


def lane_utilization(*counts: LaneCounts) -> dict[str, float]:
    """Useful leapfrog steps / (steps executed x lanes), overall and in the warm-up and sampling periods.

    ``counts``: :class:`LaneCounts` with lane counts ``(num_blocks, lanes)`` and ``loop_steps: (num_blocks,)``
    (e.g. ``NutsResult.lanes``); sums over all blocks. Every lane is busy from a block's first step
    until it has done all its iterations, then idles. A block's warm-up period is its steps until its
    last lane finished warm-up (``max(warmup_steps)``), its sampling period the rest; a period's useful
    steps are all busy lane-steps in it (a lane that samples while others still warm up is busy).
    """
    useful = {"warmup": 0, "sampling": 0}
    executed = {"warmup": 0, "sampling": 0}
    busy_all = []
    for block in counts:
        loop_steps = np.asarray(block.loop_steps)
        warm = np.asarray(block.warmup_steps, dtype=np.int64).reshape(loop_steps.size, -1)
        busy = warm + np.asarray(block.sampling_steps, dtype=np.int64).reshape(warm.shape)
        for lanes_warm, lanes_busy, steps in zip(warm, busy, loop_steps, strict=True):
            warm_end = int(lanes_warm.max())
            in_warm = int(np.minimum(lanes_busy, warm_end).sum())
            useful["warmup"] += in_warm
            useful["sampling"] += int(lanes_busy.sum()) - in_warm
            executed["warmup"] += lanes_busy.size * warm_end
            executed["sampling"] += lanes_busy.size * (int(steps) - warm_end)
            busy_all.append(lanes_busy)
    busy = np.concatenate(busy_all)
    busy = busy[busy > 0]
    rate = lambda u, e: float(u / e) if e else 1.0  # noqa: E731
    return {
        "overall": rate(sum(useful.values()), sum(executed.values())),
        "warmup": rate(useful["warmup"], executed["warmup"]),
        "sampling": rate(useful["sampling"], executed["sampling"]),
        "lanes": int(busy.size),
        "loop_steps": int(sum(int(np.sum(block.loop_steps)) for block in counts)),
        "mean_steps_per_lane": float(busy.mean()),
        "max_steps_per_lane": int(busy.max()),
    }
