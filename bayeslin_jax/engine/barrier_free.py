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
  the draw and its statistics are recorded in the sampling phase (or, with ``draw_stats=False``, only
  the draw, the statistics being summed in the lane into the run's summaries), a new momentum is drawn;
* a lane that finished all its iterations idles (masked) until the last lane finishes.

The FSM knows nothing of the model: :func:`run_block` takes a potential ``U(z; args, shared)``, each
run's arguments (e.g. its dataset) and initial point, so it serves the Gaussian engine and any NumPyro
model alike (:func:`bayeslin_jax.engine.sampling.sample_runs`).

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

from bayeslin_jax.engine.nuts import STAT_NAMES, SUMMARY_STAT_NAMES, NutsConfig, calibrated_step_size, tree_depth

MAX_DELTA_ENERGY = 1000.0  # NumPyro's divergence threshold on the energy error
REFILL_FRACTION = 8  # a loop step (re)fills at most lanes // 8 lanes (a fresh run costs about a step)


def _int():
    """NumPyro's integer dtype (int64 under x64)."""
    return jnp.result_type(int)


class LaneCounts(NamedTuple):  # numpydoc ignore=PR02
    """Leapfrog accounting of one device's FSM, for :func:`lane_utilization`.

    An idle lane-step is a step of a lane whose run is done and whose queue is empty. All scalars are 0-d
    arrays.

    Parameters
    ----------
    warmup_steps : int array, shape ``(R,)``
        Leapfrog steps of each run in warm-up.
    sampling_steps : int array, shape ``(R,)``
        Leapfrog steps of each run in sampling.
    loop_steps : int array, shape ``()``
        Steps the loop executed (each one executes every lane, busy or idle).
    lanes : int array, shape ``()``
        Lanes of the FSM.
    idle_warmup : int array, shape ``()``
        Idle lane-steps while some busy lane was still in warm-up.
    idle_sampling : int array, shape ``()``
        Idle lane-steps while all busy lanes were sampling.
    """

    warmup_steps: Array
    sampling_steps: Array
    loop_steps: Array
    lanes: Array
    idle_warmup: Array
    idle_sampling: Array


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
    tally: Array  # over the draws so far: divergences, max-tree-depth hits, sum of tree depths, of leapfrogs
    accept_sum: Array  # sum of the draws' acceptance probabilities
    round_accept: Array  # step-size calibration: sum of the acceptance probabilities of the current round


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


def _lane_init(sample_key, z, args, shared, *, potential, unravel, config: NutsConfig, adapter) -> _Lane:
    """A lane at the start of the first trajectory of a run: its sampler key, flat initial point ``z: (D,)``
    and model arguments ``args``."""
    pe, z_grad = jax.value_and_grad(_flat_potential(potential(args, shared), unravel))(z)
    raw = jax.random.key_data(sample_key)
    key_hmc, key_adapt, _ = jax.random.split(raw, 3)  # the third one is NumPyro's unused initial momentum
    adapt = adapter[0](IntegratorState(z, None, pe, z_grad), key_adapt, jnp.ones((), z.dtype))
    rng_key, energy0, tree, key_transition = _begin_iteration(z, pe, z_grad, key_hmc, adapt)
    tree_key, going_right, transition_key, sub, sub_key = _begin_doubling(tree, key_transition)
    ckpts = jnp.zeros((config.max_tree_depth, z.shape[0]), z.dtype)
    zero = jnp.zeros((), _int())
    lane = _Lane(
        zero, z, pe, z_grad, rng_key, adapt, energy0, tree, tree_key, going_right, transition_key,
        sub, sub_key, ckpts, ckpts, zero, zero, jnp.zeros(4, _int()), jnp.zeros((), z.dtype), jnp.zeros((), z.dtype),
    )  # fmt: skip
    return lane


def _flat_potential(potential_fn, unravel):
    return lambda flat: potential_fn(unravel(flat))


def _lane_step(lane: _Lane, args, shared, *, potential, config: NutsConfig, adapter, unravel, draw_stats: bool):
    """One leapfrog step of one lane, then its bookkeeping (vmapped over lanes: one batched gradient).

    ``args``: the lane's run's model arguments. Returns the new lane, its record row (``(D,)``, or
    ``(D + len(STAT_NAMES),)`` with ``draw_stats``) and the draw slot it belongs to (``num_draws``, out
    of range, when the step recorded no draw).
    """
    total = config.num_warmup + config.num_draws
    active = lane.i < total
    adapt = lane.adapt
    inv_mm, step_size = adapt.inverse_mass_matrix, adapt.step_size
    _, vv_update = velocity_verlet(_flat_potential(potential(args, shared), unravel), euclidean_kinetic_energy)
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
    adaptive, rounds, round_length = config.warmup_phases()
    adapted = adapter[1](
        lane.i, accept_prob, IntegratorState(z_new, None, tree.z_proposal_pe, tree.z_proposal_grad), adapt
    )
    adapt_new = _select(iter_end & (lane.i < adaptive), adapted, adapt)
    round_accept = lane.round_accept
    if rounds:  # step-size calibration rounds after NumPyro's adaptation, as warmup_and_draw runs them
        calibrating = iter_end & warm & (lane.i >= adaptive)
        round_accept = round_accept + jnp.where(calibrating, accept_prob, 0.0).astype(dtype)
        round_end = calibrating & ((lane.i - adaptive + 1) % round_length == 0)
        calibrated = calibrated_step_size(adapt.step_size, round_accept / round_length, config.target_accept)
        adapt_new = adapt_new._replace(step_size=jnp.where(round_end, calibrated, adapt_new.step_size))
        round_accept = jnp.where(round_end, 0.0, round_accept).astype(dtype)
    drawn = active & iter_end & ~warm
    slot = jnp.where(drawn, lane.i - config.num_warmup, config.num_draws)  # out of range: no write
    depth = tree_depth(tree.num_proposals)
    tally = jnp.stack([tree.diverging, depth >= config.max_tree_depth, depth, tree.num_proposals]).astype(_int())
    if draw_stats:  # one row per draw: the position, then the statistics (one scatter per step, not eight)
        stats = {
            "diverging": tree.diverging,
            "n_steps": tree.num_proposals,
            "tree_depth": depth,
            "step_size": adapt_new.step_size,
            "acceptance_rate": accept_prob,
            "energy": tree.z_proposal_energy,
            "lp": -tree.z_proposal_pe,
        }
        row = jnp.concatenate([z_new, jnp.stack([jnp.asarray(stats[k], dtype) for k in STAT_NAMES])])
    else:  # the statistics only enter the run's summaries
        row = z_new
    chain: tuple[Array, Array, Array] = _select(
        iter_end, (z_new, tree.z_proposal_pe, tree.z_proposal_grad), (lane.z, lane.pe, lane.z_grad)
    )
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
        tally=lane.tally + jnp.where(drawn, tally, 0),
        accept_sum=lane.accept_sum + jnp.where(drawn, accept_prob, 0.0).astype(dtype),
        round_accept=round_accept,
    )
    return _select(active, new, lane), row, slot


def _take(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


def run_block(sample_keys, z0, run_args, shared, *, potential, config: NutsConfig, batch_size: int | None,
              draw_stats: bool = True):
    """Run all runs of one device through one FSM of ``L = batch_size`` lanes (all runs at once if None).

    Parameters
    ----------
    sample_keys : array of keys, shape ``(R,)``
        Each run's sampler key (what :func:`~bayeslin_jax.engine.nuts.initial_point` returns beside the point).
    z0 : pytree, leaves ``(R, ...)``
        Each run's unconstrained initial point ``{site: (R, *shape)}``.
    run_args : pytree, leaves ``(R, ...)``
        Each run's model arguments (e.g. ``(x, y)``).
    shared : pytree
        Model arguments shared by every run (e.g. the prior's parameters).
    potential : callable
        ``potential(args, shared)`` -> the potential energy ``U(z)`` of one run (``args``: one run's slice of
        ``run_args``; ``z``: a point shaped as one run's ``z0``).
    config : NutsConfig
        Sampler settings (warm-up, draws, tree depth, adaptation, calibration).
    batch_size : int or None
        Lanes. With ``L < R`` the runs form a queue: a lane whose run is done takes the next one, so lanes
        idle only once the queue is empty.
    draw_stats : bool, default True
        Record every draw's :data:`~bayeslin_jax.engine.nuts.STAT_NAMES`; False: only accumulate each run's
        :data:`~bayeslin_jax.engine.nuts.SUMMARY_STAT_NAMES` in its lane (the ``(R, S)`` statistics never exist).

    Returns
    -------
    draws : dict
        Unconstrained draws ``{site: (R, S, *shape)}``.
    stats : dict
        ``(R, S)`` per draw, or ``(R,)`` summaries (equal to
        :func:`~bayeslin_jax.engine.nuts.summarize_draw_stats` of the per-draw ones, up to float summation order).
    counts : LaneCounts
        The FSM's leapfrog accounting, for :func:`lane_utilization`.
    """
    num_runs = sample_keys.shape[0]
    num_lanes = min(batch_size or num_runs, num_runs)
    total = config.num_warmup + config.num_draws
    adapter = warmup_adapter(
        config.warmup_phases()[0], dense_mass=config.dense_mass, target_accept_prob=config.target_accept
    )
    flat0, unravel = ravel_pytree(_take(z0, 0))
    z0_flat = jax.vmap(lambda z: ravel_pytree(z)[0])(z0)  # (R, D)
    fns = {"potential": potential, "config": config, "adapter": adapter, "unravel": unravel}
    init = jax.vmap(partial(_lane_init, shared=shared, **fns))
    step = jax.vmap(partial(_lane_step, shared=shared, draw_stats=draw_stats, **fns))
    # every lane starts "done" (past its last iteration); the loop's first step fills them from the queue
    first = jnp.arange(num_lanes)
    shapes = jax.eval_shape(init, sample_keys[first], z0_flat[first], _take(run_args, first))
    idle_lanes = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)._replace(
        i=jnp.full((num_lanes,), total, _int())
    )
    zero = jnp.zeros((), _int())
    dim = flat0.shape[0]
    record = jnp.zeros((num_runs, config.num_draws, dim + (len(STAT_NAMES) if draw_stats else 0)), flat0.dtype)
    # per run, written when it finishes: warm-up and sampling leapfrogs, then the lane's tally; accept sum, step size
    ints = jnp.zeros((num_runs, 6), _int())
    floats = jnp.zeros((num_runs, 2), flat0.dtype)
    carry = (idle_lanes, jnp.zeros(num_lanes, _int()), _take(run_args, first), zero, record, ints, floats, zero,
             zero, zero)  # fmt: skip

    refills = max(num_lanes // REFILL_FRACTION, 1)  # lanes (re)filled per step at most

    def _refill(args):
        lanes, run, lane_args, next_run, target, new_run = args
        idx = jnp.where(target < num_lanes, new_run, 0)
        fresh = init(sample_keys[idx], z0_flat[idx], _take(run_args, idx))
        put = lambda a, f: a.at[target].set(f, mode="drop")  # noqa: E731
        return (jax.tree.map(put, lanes, fresh), put(run, new_run), jax.tree.map(put, lane_args, _take(run_args, idx)),
                next_run + jnp.sum(target < num_lanes))  # fmt: skip

    def _body(carry):
        lanes, run, lane_args, next_run, record, ints, floats, count, idle_warm, idle_sampling = carry
        # the first done lanes take the next runs of the queue (at most `refills` per step)
        (done,) = jnp.nonzero(lanes.i >= total, size=refills, fill_value=num_lanes)
        new_run = next_run + jnp.arange(refills)
        target = jnp.where((done < num_lanes) & (new_run < num_runs), done, num_lanes)  # out of range: none
        lanes, run, lane_args, next_run = jax.lax.cond(
            jnp.any(target < num_lanes),
            _refill,
            lambda args: args[:4],
            (lanes, run, lane_args, next_run, target, new_run),
        )
        busy = lanes.i < total
        warm_now = jnp.any(busy & (lanes.i < config.num_warmup))
        idle = num_lanes - busy.sum()
        lanes, row, slot = step(lanes, lane_args)
        record = record.at[run, slot].set(row, mode="drop")
        finished = jnp.where(busy & (lanes.i >= total), run, num_runs)  # out of range: not finished
        ints = ints.at[finished].set(
            jnp.concatenate([jnp.stack([lanes.warmup_steps, lanes.sampling_steps], -1), lanes.tally], -1), mode="drop"
        )
        floats = floats.at[finished].set(jnp.stack([lanes.accept_sum, lanes.adapt.step_size], -1), mode="drop")
        idle_warm = idle_warm + jnp.where(warm_now, idle, 0)
        idle_sampling = idle_sampling + jnp.where(warm_now, 0, idle)
        return lanes, run, lane_args, next_run, record, ints, floats, count + 1, idle_warm, idle_sampling

    def _running(carry):
        return jnp.any(carry[0].i < total) | (carry[3] < num_runs)

    carry = jax.lax.while_loop(_running, _body, carry)
    *_, record, ints, floats, loop_steps, idle_warm, idle_sampling = carry

    draws = jax.vmap(jax.vmap(unravel))(record[..., :dim])
    if draw_stats:
        int_type = {"diverging": bool, "n_steps": _int(), "tree_depth": jnp.int32}
        stats = {k: record[..., dim + j].astype(int_type.get(k, record.dtype)) for j, k in enumerate(STAT_NAMES)}
    else:
        means = jnp.concatenate([ints[:, 4:].astype(floats.dtype), floats[:, :1]], -1) / config.num_draws
        values = (ints[:, 2].astype(jnp.int32), ints[:, 3].astype(jnp.int32), *means.T, floats[:, 1])
        stats = dict(zip(SUMMARY_STAT_NAMES, values, strict=True))
    counts = LaneCounts(ints[:, 0], ints[:, 1], loop_steps, jnp.asarray(num_lanes, _int()), idle_warm, idle_sampling)
    return draws, stats, counts


def lane_utilization(*counts: LaneCounts) -> dict[str, float]:
    """Measure useful leapfrog steps / (steps executed x lanes), overall and in warm-up and sampling.

    A busy lane's step is useful (it is one leapfrog of its run's NUTS, in warm-up or sampling); an idle
    lane's step is wasted and is charged to warm-up while some busy lane is still warming up, else to
    sampling. ``warmup = warm-up leapfrogs / (warm-up leapfrogs + idle steps charged to warm-up)``,
    likewise ``sampling``; ``overall = all leapfrogs / (lanes x loop steps)``.

    Parameters
    ----------
    *counts : LaneCounts
        Of one or more devices (e.g. ``*NutsResult.lanes``); summed.

    Returns
    -------
    dict
        ``overall``, ``warmup``, ``sampling`` (fractions in [0, 1]); ``lanes`` (all devices' lanes), ``runs``,
        ``loop_steps`` (the longest device's), ``mean_steps_per_run`` and ``max_steps_per_run`` (leapfrogs).
    """
    warm = sum(int(np.asarray(c.warmup_steps).sum()) for c in counts)
    sampling = sum(int(np.asarray(c.sampling_steps).sum()) for c in counts)
    idle_warm = sum(int(c.idle_warmup) for c in counts)
    idle_sampling = sum(int(c.idle_sampling) for c in counts)
    executed = sum(int(c.lanes) * int(c.loop_steps) for c in counts)
    per_run = np.concatenate([np.asarray(c.warmup_steps) + np.asarray(c.sampling_steps) for c in counts])
    return {
        "overall": (warm + sampling) / executed,
        "warmup": warm / (warm + idle_warm) if warm else 1.0,
        "sampling": sampling / (sampling + idle_sampling) if sampling else 1.0,
        "lanes": sum(int(c.lanes) for c in counts),
        "runs": int(per_run.size),
        "loop_steps": max(int(c.loop_steps) for c in counts),
        "mean_steps_per_run": float(per_run.mean()),
        "max_steps_per_run": int(per_run.max()),
    }
