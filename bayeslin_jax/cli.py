"""Command line: ``bayeslin demo | fit | study | report | sbc``.

Each sub-command lives in ``bayeslin_jax/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Bad input (:class:`BayeslinError`)
becomes a one-line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bayeslin_jax.errors import BayeslinError

COMMANDS = {
    "demo": "reproduce the tutorial end to end (figures + exact-vs-NUTS table)",
    "fit": "fit your own data (CSV with columns x, y)",
    "study": "run a chunked, resumable simulation study over many datasets",
    "report": "diagnostics report of a study store",
    "sbc": "simulation-based calibration across many seeds",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayeslin", description=__doc__.splitlines()[0])
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="CPU cores exposed to JAX as devices; datasets are split over them (default: all cores)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"bayeslin_jax.commands.{name}")
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def configure_jax(x64: bool, cpu_devices: int | None) -> None:
    """Global JAX settings, applied before any computation (the CPU backend reads them when created).

    Several CPU devices let the engine run blocks of datasets in parallel, one per core, with
    bit-identical results (see ``engine.sample_nuts``); an explicit
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` wins. ``cpu_devices=None``: all cores.
    An explicit count that cannot take effect (the backend already exists) is reported on stderr.
    """
    import jax

    explicit = cpu_devices is not None
    cpu_devices = (os.cpu_count() or 1) if cpu_devices is None else cpu_devices
    if cpu_devices < 1:
        raise BayeslinError(f"--cpu-devices must be positive, got {cpu_devices}")
    jax.config.update("jax_enable_x64", x64)
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        try:
            jax.config.update("jax_num_cpu_devices", cpu_devices)
        except RuntimeError:  # backend already initialised (e.g. main() called twice in one process)
            existing = len(jax.devices("cpu"))
            if explicit and existing != cpu_devices:
                print(f"warning: --cpu-devices {cpu_devices} ignored: JAX's CPU backend already exists with "
                      f"{existing} device(s)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_jax(x64=args.x64, cpu_devices=args.cpu_devices)
        return int(args._module.run(args) or 0)
    except BayeslinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
