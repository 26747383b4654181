"""Command line: ``bayeslin demo | fit | study | report | sbc``.

Each sub-command lives in ``bayeslin_jax/interfaces/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Every failure is one line ``error: ...`` on
stderr, never a traceback, and the exit status says which kind (also in ``bayeslin --help``):

=====  ==========================================================================================
0      success
1      a check failed: ``bayeslin sbc`` calibration FAIL, ``bayeslin report --strict`` with failed datasets
2      bad input: invalid flags or data, an unusable output path, a damaged or foreign store
3      I/O failure that is not the input's fault: disk full, a read/write error
4      internal error (a bug): one line; ``BAYESLIN_DEBUG=1`` prints the traceback
130    interrupted (Ctrl-C); a ``study``/``sbc`` store is left resumable: rerun the same command
143    terminated (SIGTERM), handled like Ctrl-C: one line, the store left resumable
=====  ==========================================================================================

Output paths (``--out``, ``--json``, ``--plot(s)``) are checked before any compute.

Compiled programs are kept in JAX's persistent compilation cache (``$BAYESLIN_CACHE_DIR``, default
``~/.cache/bayeslin/jax``), so a second ``bayeslin fit`` of the same shapes skips compiling;
``--no-compile-cache`` (or ``BAYESLIN_CACHE_DIR=""``) turns it off. JAX is imported only when a
command needs it: ``bayeslin --help`` and input errors answer without it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from bayeslin_jax.core.errors import BayeslinError

COMMANDS = {
    "demo": "reproduce the tutorial end to end (figures + exact-vs-NUTS table)",
    "fit": "fit your own data (CSV with columns x, y; or --formula / --columns for several predictors)",
    "study": "run a chunked, resumable simulation study over many datasets",
    "report": "diagnostics report of a study store",
    "sbc": "simulation-based calibration across many seeds",
    "compare": "compare any models on your data by PSIS-LOO (ArviZ), per dataset, with the exact evidence where known",
}
STORE_ARGUMENT = {"study": "out", "sbc": "out", "report": "store"}  # commands that read or write a store
STORE_WRITERS = ("study", "sbc")  # their stores resume after an interruption
EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_IO, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_STATUS_HELP = """exit status:
  0    success
  1    a check failed (sbc calibration FAIL, report --strict with failed datasets)
  2    bad input: invalid flags or data, an unusable output path, a damaged or foreign store
  3    I/O failure: disk full, a read/write error
  4    internal error (a bug); BAYESLIN_DEBUG=1 prints the traceback
  130  interrupted (Ctrl-C); a study/sbc store stays resumable: rerun the same command
  143  terminated (SIGTERM), like Ctrl-C"""
DEBUG_ENV = "BAYESLIN_DEBUG"
CACHE_ENV = "BAYESLIN_CACHE_DIR"  # compilation cache folder; set to "" to disable
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
PATH_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EROFS,
               errno.ENAMETOOLONG, errno.ELOOP}
STORE_LIBRARIES = ("zarr", "numcodecs", "json")  # exceptions raised inside these while using a store
# "-0.07,0.1" or "-1;2": a negative list value that argparse would take for an option
NEGATIVE_LIST = re.compile(r"^-\.?\d[^=]*[,;]")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (``error: ...``, exit 2) like every other failure."""

    def error(self, message: str):
        raise BayeslinError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(  # numpydoc ignore=PR01
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Descriptions and epilogs as written, and each option's default after its help (``(default: 1000)``).

    A default of None or False is not printed (the help says what happens without the option), nor one the help
    already states (``%(default)s`` or ``(default ...)``), nor that of an on/off flag (``--no-whiten``'s stored
    True would read as "off by default").
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        switch = action.nargs == 0  # store_true / store_false / store_const: the flag's help says what it does
        if switch or action.default is None or action.default is False or "%(default)" in text or "(default" in text:
            return text
        return super()._get_help_string(action) or ""  # never None here: action.help is set


def build_parser() -> argparse.ArgumentParser:
    """Build the ``bayeslin`` parser: global flags and one sub-parser per entry of :data:`COMMANDS`.

    Each sub-command's ``--help`` shows every default (:class:`HelpFormatter`). Importing and calling
    this needs no JAX (the docs' CLI reference is generated from it).

    Returns
    -------
    argparse.ArgumentParser
        The parser; a usage error raises :class:`~bayeslin_jax.core.errors.BayeslinError` (one line, exit
        status 2) instead of exiting. Each sub-parser's namespace carries its command module as ``_module``.
    """
    parser = _Parser(
        prog="bayeslin",
        description=__doc__.splitlines()[0],
        epilog=EXIT_STATUS_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="CPU cores exposed to JAX as devices; datasets are split over them (default: all cores)",
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help=f"do not use JAX's persistent compilation cache (default: on, in ${CACHE_ENV} or "
        "~/.cache/bayeslin/jax; a second run of the same shapes skips compiling)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"bayeslin_jax.interfaces.commands.{name}")
        command = sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_STATUS_HELP,
                                 formatter_class=HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def join_negative_lists(argv: list[str]) -> list[str]:
    """Join an option and a negative list value: ``["--prior-mean", "-0.07,0.1"]`` -> ``["--prior-mean=-0.07,0.1"]``.

    argparse takes a value that starts with ``-`` and is not a plain number for an option and
    refuses it; a comma- or semicolon-separated list of numbers never is one.

    Parameters
    ----------
    argv : list of str
        Command-line arguments (without the program name).

    Returns
    -------
    list of str
        ``argv`` with each such pair joined by ``=``.
    """
    out: list[str] = []
    for token in argv:
        previous = out[-1] if out else ""
        if NEGATIVE_LIST.match(token) and previous.startswith("--") and previous != "--" and "=" not in previous:
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


def default_cache_dir() -> Path:
    """Folder where the CLI keeps JAX's persistent compilation cache.

    Returns
    -------
    Path
        ``$BAYESLIN_CACHE_DIR`` if set and non-empty, else ``$XDG_CACHE_HOME/bayeslin/jax``
        (``~/.cache/bayeslin/jax``).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayeslin" / "jax"


def configure_jax(x64: bool, cpu_devices: int | None, compile_cache: Path | None = None) -> None:
    """Global JAX settings, applied before any computation (the CPU backend reads them when created).

    Several CPU devices let the engine run blocks of datasets in parallel, one per core, with
    bit-identical results (see ``engine.sample_nuts``); an explicit
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` wins.

    JAX is not imported here when it is not loaded yet: the settings go into its ``JAX_*``
    environment variables, read when a command first imports it, so ``--help`` and input errors
    stay fast.

    Parameters
    ----------
    x64 : bool
        Compute in float64 (``jax_enable_x64``).
    cpu_devices : int or None
        CPU cores exposed to JAX as devices; None: all cores. An explicit count that cannot take
        effect (the backend already exists) is reported on stderr.
    compile_cache : Path, optional
        Folder of JAX's persistent compilation cache (every program is cached, so a second run of
        the same shapes skips compiling); None disables it.

    Raises
    ------
    BayeslinError
        ``cpu_devices`` is smaller than 1.
    """
    explicit = cpu_devices is not None
    cpu_devices = (os.cpu_count() or 1) if cpu_devices is None else cpu_devices
    if cpu_devices < 1:
        raise BayeslinError(f"--cpu-devices must be positive, got {cpu_devices}")
    settings: dict[str, str] = {"jax_enable_x64": str(bool(x64))}
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        settings["jax_num_cpu_devices"] = str(cpu_devices)
    if compile_cache is not None:
        settings["jax_compilation_cache_dir"] = str(compile_cache)
        settings["jax_persistent_cache_min_compile_time_secs"] = "0"
    if "jax" not in sys.modules:
        os.environ.update({name.upper(): value for name, value in settings.items()})
        return
    import jax  # already loaded (main() called from Python): update its config directly

    jax.config.update("jax_enable_x64", x64)
    if compile_cache is not None:
        jax.config.update("jax_compilation_cache_dir", str(compile_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if "jax_num_cpu_devices" in settings:
        try:
            jax.config.update("jax_num_cpu_devices", cpu_devices)
        except RuntimeError:  # backend already initialised (e.g. main() called twice in one process)
            existing = len(jax.devices("cpu"))
            if explicit and existing != cpu_devices:
                print(f"warning: --cpu-devices {cpu_devices} ignored: JAX's CPU backend already exists with "
                      f"{existing} device(s)", file=sys.stderr)


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and its causes/contexts, outermost first."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _disk_full(err: BaseException) -> OSError | None:
    return next((e for e in _chain(err) if isinstance(e, OSError) and e.errno in DISK_FULL), None)


def _raised_in(err: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether any frame of ``err``'s traceback is in one of ``packages`` (by module file path)."""
    for frame in traceback.extract_tb(err.__traceback__):
        parts = Path(frame.filename).parts
        if any(package in parts for package in packages):
            return True
    return False


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _os_error(err: OSError) -> tuple[int, str]:
    where = f": {err.filename}" if err.filename else ""
    reason = err.strerror or str(err)
    if err.errno in DISK_FULL:
        return EXIT_IO, f"disk full while writing{where or ' (no space left on device)'}"
    if err.errno in PATH_ERRNOS:
        return EXIT_BAD_INPUT, f"{reason}{where}"
    return EXIT_IO, f"I/O error: {reason}{where}"


EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM received: handled like Ctrl-C (every writer leaves its store resumable), exit status 143."""


class UserCodeExit(BayeslinError):
    """User code (a ``--model`` file) called ``sys.exit`` while a command ran: an error, not the command's end."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _cli_signals_and_warnings() -> Iterator[None]:
    """For the duration of :func:`main`: SIGTERM raises :class:`Terminated` (main thread only), and warnings
    print as one line ``warning: ...`` (no source line)."""
    previous_term = None
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not the main thread / no SIGTERM here
        previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        stream = sys.stderr if file is None else file
        with contextlib.suppress(OSError, ValueError):
            print(f"warning: {_one_line(message)}", file=stream)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous_show
        if previous_term is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, previous_term)


def describe_failure(err: BaseException, store: str | None = None, writes_store: bool = False) -> tuple[int, str]:
    """Exit status and one-line message for any exception that ends a command.

    Parameters
    ----------
    err : BaseException
        What ended the command (Ctrl-C and SIGTERM included).
    store : str, optional
        The store path the command reads or writes, named in messages about it.
    writes_store : bool, default False
        Whether the command computes into ``store`` (and resumes it when rerun).

    Returns
    -------
    tuple of (int, str)
        The exit status (see the module docstring) and the message, without the ``error:`` prefix.
    """
    if isinstance(err, Terminated):
        if writes_store and store is not None and Path(store).exists():
            return EXIT_TERMINATED, f"terminated; the store at {store} is resumable: rerun the same command"
        return EXIT_TERMINATED, "terminated"
    if isinstance(err, KeyboardInterrupt):
        if writes_store and store is not None and Path(store).exists():
            return EXIT_INTERRUPTED, f"interrupted; the store at {store} is resumable: rerun the same command"
        return EXIT_INTERRUPTED, "interrupted"
    full = _disk_full(err)
    if full is not None:  # whoever wrapped it: status 3, and the message says "disk full"
        message = _os_error(full)[1]
        if isinstance(err, BayeslinError):
            message = str(err) if "disk full" in str(err) else f"{message} ({err})"
        return EXIT_IO, _one_line(message)
    if isinstance(err, BayeslinError):
        return err.exit_status, _one_line(err)
    if isinstance(err, OSError):
        return _os_error(err)
    detail = _one_line(f"{type(err).__name__}: {err}")
    if store is not None and _raised_in(err, STORE_LIBRARIES):
        return EXIT_BAD_INPUT, f"cannot read the store at {store}, it looks damaged ({detail})"
    about = f" while using the store at {store}" if store is not None else ""
    return EXIT_INTERNAL, f"internal error{about} ({detail}); rerun with {DEBUG_ENV}=1 to see the traceback"


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    SIGTERM is handled like Ctrl-C (one line, exit 143, stores resumable); warnings print as one line; a
    ``sys.exit`` called by user code (a ``--model`` file) while a command runs is an error (exit 2), while
    ``--help`` and usage errors end the parse as usual. Every failure prints one line ``error: ...`` on
    stderr (``BAYESLIN_DEBUG=1`` adds the traceback).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``). Only without them (the program itself) does an
        interruption exit the process at once.

    Returns
    -------
    int
        The exit status (see the module docstring).
    """
    with _cli_signals_and_warnings():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    store, command = None, None
    try:
        parser = build_parser()
        args = parser.parse_args(join_negative_lists(sys.argv[1:] if argv is None else list(argv)))  # --help exits
        command = args.command
        store = getattr(args, STORE_ARGUMENT.get(command, ""), None)
        cache = None if args.no_compile_cache or os.environ.get(CACHE_ENV) == "" else default_cache_dir()
        configure_jax(x64=args.x64, cpu_devices=args.cpu_devices, compile_cache=cache)
        try:
            return int(args._module.run(args) or 0)
        except SystemExit as exit_:  # raised by user code while the command ran: never the command's own end
            code = exit_.code
            raise UserCodeExit(f"the model file called sys.exit({code!r}) while bayeslin {command} ran; "
                               "nothing was finished (a model file must only define the model)") from None
    except (Exception, KeyboardInterrupt) as err:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exception(err, file=sys.stderr)
        status, message = describe_failure(err, store, writes_store=command in STORE_WRITERS)
        print(f"error: {message}", file=sys.stderr)
        if status in (EXIT_INTERRUPTED, EXIT_TERMINATED) and argv is None:  # the program itself, not a Python call
            _leave_now(status)
        return status


def _leave_now(status: int) -> None:
    """Exit at once, skipping interpreter shutdown.

    After Ctrl-C, zarr's event-loop thread may hold pending tasks that print "Task was destroyed"
    tracebacks at shutdown; every file the store wrote is already complete (atomic writes), so
    nothing is lost by not waiting for them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
