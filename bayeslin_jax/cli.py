"""Command line: ``bayeslin demo | fit | study | report | sbc``.

Each sub-command lives in ``bayeslin_jax/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Bad input (:class:`BayeslinError`)
becomes a one-line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
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
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"bayeslin_jax.commands.{name}")
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    try:
        return int(args._module.run(args) or 0)
    except BayeslinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
