"""``bayeslin study``: chunked, resumable simulation study (NUTS + exact posterior per dataset).

Rerunning the same command after an interruption (Ctrl-C, SIGKILL, lost machine) continues
where it stopped; a store written with other settings is refused.
"""

from __future__ import annotations

import argparse
import time

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import (
    add_design_arguments,
    add_sampler_arguments,
    add_spec_arguments,
    check_output_dir,
    config_from_args,
    design_from_args,
    positive_int,
    print_model_priors,
    spec_from_args,
)
from bayeslin_jax.interfaces.commands.models import add_model_arguments, model_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin study``.

    Flags: the model, the design, the sampler and its layout, the simulation, the store, multi-process.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    add_spec_arguments(parser)
    add_design_arguments(parser)
    add_model_arguments(parser)
    add_sampler_arguments(parser)
    nuts = parser.add_argument_group("sampler layout")
    nuts.add_argument("--max-tree-depth", type=positive_int, default=10,
                      help="largest NUTS tree depth (2^depth leapfrog steps per draw at most)")
    nuts.add_argument("--method", choices=("auto", "map", "vmap", "barrier_free"), default="auto",
                      help="runs per device: map (one after another; CPU default), vmap (lock-step blocks) or "
                           "barrier_free (lanes of one state machine that never wait for each other; GPU default)")
    nuts.add_argument("--batch-size", type=positive_int, default=None,
                      help="vmap block size in runs (default: all); barrier_free: lanes (default 1024 on CPU)")
    sim = parser.add_argument_group("simulation")
    sim.add_argument("--datasets", type=positive_int, default=1000, help="simulated datasets B (default 1000)")
    sim.add_argument("--num-points", type=positive_int, default=11, help="points per dataset (default 11)")
    sim.add_argument("--simulator", choices=("prior", "tutorial"), default="prior",
                     help="prior: truth drawn from the prior (default); tutorial: y = 0.3x + 2 + N(0, 0.1)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="zarr store to write or resume (a directory)")
    run.add_argument("--chunk-size", type=positive_int, default=None,
                     help="datasets per chunk (default: what fits memory; a resumed store keeps its own)")
    run.add_argument("--devices", type=positive_int, default=None, help="local devices to use (default all)")
    run.add_argument("--save-draws", action="store_true", help="also store every draw (large)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = parser.add_argument_group("multi-process (jax.distributed)")
    dist.add_argument("--distributed", action="store_true",
                      help="this is one process of a multi-process run; writes OUT/part-<i>-of-<n>.zarr")
    dist.add_argument("--coordinator", default=None, help="host:port of process 0 (default: auto-detected)")
    dist.add_argument("--num-processes", type=positive_int, default=None,
                      help="processes in the run (default: auto-detected by jax.distributed)")
    dist.add_argument("--process-id", type=int, default=None,
                      help="this process's index, 0 to num-processes - 1 (default: auto-detected)")


def check_seed(seed: int) -> None:
    """Refuse a ``--seed`` outside ``[0, 2^32)`` (:func:`bayeslin_jax.core.validation.check_seed`).

    Parameters
    ----------
    seed : int
        The ``--seed`` value.

    Raises
    ------
    BayeslinError
        ``seed`` is outside ``[0, 2^32)``.
    """
    from bayeslin_jax.core.validation import check_seed as check

    check(seed, "--seed")


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin study``.

    Run (or resume) the chunked simulation study into its store and print where it is.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        0 (failures raise :class:`~bayeslin_jax.core.errors.BayeslinError`, reported by
        :func:`bayeslin_jax.interfaces.cli.main`).
    """
    from bayeslin_jax.workflows.studies import run as study

    check_seed(args.seed)
    check_output_dir(args.out, "--out")
    if args.distributed:  # before anything touches a JAX backend (building the spec does)
        study.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    nuts = config_from_args(args, max_tree_depth=args.max_tree_depth, method=args.method, batch_size=args.batch_size)
    t0 = time.perf_counter()
    model = model_from_args(args, args.num_points)
    if model is not None and args.design is not None:
        raise BayeslinError(f"{model.name}: --design studies are for the Gaussian model")
    loaded = design_from_args(args, args.design)  # --design: x fixed from the CSV, w from the prior, y simulated
    spec = model or spec_from_args(args, basis=None if loaded is None else loaded[0])
    print_model_priors(spec)
    num_points = args.num_points if loaded is None else loaded[0].num_rows
    config = study.StudyConfig(num_datasets=args.datasets, seed=args.seed, nuts=nuts, simulator=args.simulator,
                               num_points=num_points, save_draws=args.save_draws, chunk_size=args.chunk_size)
    ds = study.run_study(args.out, spec, config, num_devices=args.devices, progress=not args.no_progress,
                         distributed=args.distributed)
    wall = time.perf_counter() - t0
    where = ds.attrs["paths"][0]
    print(f"study: {ds.sizes['dataset']} datasets in {where} (this run {wall:.1f} s)")
    print(f"report: bayeslin report {args.out} --out <dir>")
    return 0
