"""Every failure of the command line is one line ``error: ...`` with its documented exit status.

Most checks call ``cli.main`` in-process and patch the compute step to fail loudly, which proves
that the error comes before any compute. Two real subprocesses: Ctrl-C during a study, and one
end-to-end run of the installed module on bad data from standard input.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from bayeslin_jax.core.data import load_csv, strict_json
from bayeslin_jax.core.errors import BayeslinError, BayeslinIOError
from bayeslin_jax.interfaces import cli
from bayeslin_jax.interfaces.cli import build_parser, describe_failure, join_negative_lists, main
from bayeslin_jax.workflows import store

ROOT = Path(__file__).resolve().parents[1]
GOOD_CSV = "x,y\n-0.5,1.8\n0.0,2.0\n0.5,2.2\n"


def expect_error(capsys, argv: list[str], status: int, *fragments: str) -> str:
    """Run the CLI in-process; assert one stderr line ``error: ...`` containing ``fragments`` and ``status``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err  # one line, no traceback
    for fragment in fragments:
        assert fragment in err, err
    assert code == status, err
    return err


@pytest.fixture
def no_compute(monkeypatch):
    """Make every compute entry point of the commands fail: errors must come before them."""

    def boom(*args, **kwargs):
        raise AssertionError("compute started before the error was found")

    from bayeslin_jax.workflows import fit as api
    from bayeslin_jax.workflows.sbc import run as sbc_run
    from bayeslin_jax.workflows.studies import report, run

    monkeypatch.setattr(api, "sample_nuts", boom)
    monkeypatch.setattr(run, "run_study", boom)
    monkeypatch.setattr(sbc_run, "run_sbc", boom)
    monkeypatch.setattr(report, "write_report", boom)


def write(path: Path, content: str | bytes) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _tiny_chunk(indices):
    """A chunk computation for store tests: no JAX, instant."""
    import xarray as xr

    return xr.Dataset({"v": ("dataset", indices * 1.0)}, coords={"dataset": indices})


# ----------------------------------------------------------------------------- CSV input


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"x,y\n1,2\n2,caf\xe9\n", ["data.csv:3:", "0xe9", "not UTF-8"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["binary file"]),
        (b"", ["is empty"]),
        ("x,y\n", ["no data rows"]),
        ("x,y\n1,2\n2,3,4\n", ["data.csv:3:", "3 fields, but the header has 2"]),
        ("x,x,y\n1,2,3\n", ["data.csv:1:", "duplicate column 'x'"]),
        ("x,y\n1,2\n2,abc\n", ["data.csv:3:", "column 'y'", "non-numeric value 'abc'"]),
        ("x,y\n1,2\nnan,3\n", ["data.csv:3:", "column 'x'", "non-finite value 'nan'"]),
        ("x,y\n0,1\n1,1e30\n2,3\n", ["data.csv:3:", "column 'y'", "too large for float32", "--x64"]),
    ],
)
def test_bad_csv_is_one_line_naming_file_row_and_column(tmp_path, capsys, no_compute, content, fragments) -> None:
    expect_error(capsys, ["fit", write(tmp_path / "data.csv", content)], 2, *fragments)


def test_directory_as_data_file(tmp_path, capsys, no_compute) -> None:
    expect_error(capsys, ["fit", str(tmp_path)], 2, f"{tmp_path} is a directory")


def test_bom_stdin_and_float64_range(tmp_path, monkeypatch) -> None:
    x, y = load_csv(write(tmp_path / "bom.csv", "\ufeffx,y\n1,2\n\n3,4\n"))  # BOM dropped, blank line skipped
    np.testing.assert_array_equal(x, [1.0, 3.0])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"y,x\n5,6\n7,8\n")))
    x, y = load_csv("-")
    np.testing.assert_array_equal(x, [6.0, 8.0])
    np.testing.assert_array_equal(y, [5.0, 7.0])
    # 1e30 is fine in float64 (its square 1e60 is far from the 1.8e308 limit), not in float32
    path = write(tmp_path / "big.csv", "x,y\n0,1\n1,1e30\n")
    assert load_csv(path, dtype=np.float64)[1][1] == 1e30
    with pytest.raises(BayeslinError, match=r"big\.csv:3: column 'y'"):
        load_csv(path, dtype=np.float32)


# ----------------------------------------------------------------------------- flags


def test_usage_errors_are_one_line(capsys) -> None:
    expect_error(capsys, ["fit"], 2, "required: data", "--help")
    expect_error(capsys, ["nonsense"], 2, "invalid choice")


@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_warmup_below_one_is_refused_like_negative(tmp_path, capsys, no_compute, value) -> None:
    expect_error(capsys, ["fit", write(tmp_path / "d.csv", GOOD_CSV), "--warmup", value], 2, "--warmup", ">= 1")


def test_calibrated_warmup_needs_200_warmup_iterations(tmp_path, capsys, no_compute) -> None:
    argv = ["fit", write(tmp_path / "d.csv", GOOD_CSV), "--warmup", "100", "--calibrate-step-size"]
    expect_error(capsys, argv, 2, "calibrate_step_size needs num_warmup >= 200, got 100")


def test_negative_list_values_in_the_space_form(tmp_path, capsys, no_compute) -> None:
    argv = ["fit", "d.csv", "--prior-mean", "-0.07,0.1", "--prior-cov", "-1;2", "--seed", "-3", "--dense-mass"]
    assert join_negative_lists(argv) == ["fit", "d.csv", "--prior-mean=-0.07,0.1", "--prior-cov=-1;2", "--seed",
                                         "-3", "--dense-mass"]
    args = build_parser().parse_args(join_negative_lists(argv))
    assert (args.prior_mean, args.prior_cov, args.seed) == ("-0.07,0.1", "-1;2", -3)
    sbc = build_parser().parse_args(join_negative_lists(["sbc", "--out", "o", "--predict-at", "-1,0.5"]))
    assert sbc.predict_at == "-1,0.5"
    # through main: parsing succeeds, and the (valid) prior reaches the output-path check
    expect_error(capsys, ["fit", write(tmp_path / "d.csv", GOOD_CSV), "--prior-mean", "-0.07,0.1",
                          "--json", str(tmp_path)], 2, "--json", "is a directory")


# ----------------------------------------------------------------------------- output paths, before compute


def test_output_paths_are_checked_before_compute(tmp_path, capsys, no_compute) -> None:
    data = write(tmp_path / "d.csv", GOOD_CSV)
    a_file = write(tmp_path / "a_file", "x")
    expect_error(capsys, ["fit", data, "--json", str(tmp_path)], 2, "--json", "is a directory")
    expect_error(capsys, ["fit", data, "--plot", f"{a_file}/fig.png"], 2, "--plot", "is not a directory")
    expect_error(capsys, ["study", "--out", f"{a_file}/store", "--datasets", "4"], 2, "--out", "not a directory")
    if Path("/proc/self").is_dir():  # Linux: nobody, root included, can create files in /proc
        expect_error(capsys, ["study", "--out", "/proc/bayeslin-store", "--datasets", "4"], 2, "cannot write in /proc")
    if os.geteuid() != 0:  # permissions bind everyone but root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        expect_error(capsys, ["study", "--out", str(locked / "store"), "--datasets", "4"], 2, "cannot write in")
    expect_error(capsys, ["report", str(tmp_path / "missing"), "--out", a_file], 2, "--out", "is not a directory")
    expect_error(capsys, ["sbc", "--out", str(tmp_path / "s"), "--json", str(tmp_path)], 2, "--json")
    expect_error(capsys, ["sbc", "--out", str(tmp_path / "s"), "--plots", a_file], 2, "--plots")
    expect_error(capsys, ["demo", "--out", a_file], 2, "--out", "is not a directory")


# ----------------------------------------------------------------------------- numerically unusable data


def test_overflowing_features_and_ill_conditioned_design(tmp_path, capsys, no_compute) -> None:
    x = np.linspace(0.0, 10.0, 60)
    path = tmp_path / "wide.csv"
    np.savetxt(path, np.c_[x, 0.3 * x + 2.0], delimiter=",", header="x,y", comments="")
    # x^50 = 1e50 overflows float32
    expect_error(capsys, ["fit", str(path), "--basis", "poly50"], 2, "poly50 on x in [0, 10]", "too large for float32")
    # (x^8, whose float32 normal equations were singular, is no error any more: the exact posterior is computed
    # in float64 from an SVD and NUTS samples the whitened model; see tests/test_real_data.py, Wampler1)


def test_strict_json_nulls_and_flags_non_finite() -> None:
    text = strict_json({"a": math.nan, "b": [1.0, np.float32(np.inf)], "c": {"d": np.array([2.0, -np.inf])}})

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    payload = json.loads(text, parse_constant=refuse)
    assert payload == {"a": None, "b": [1.0, None], "c": {"d": [2.0, None]}, "non_finite": ["a", "b[1]", "c.d[1]"]}
    assert json.loads(strict_json({"a": 1}))["non_finite"] == []


# ----------------------------------------------------------------------------- exceptions -> exit status


def _raising(monkeypatch, exc: BaseException) -> None:
    from bayeslin_jax.interfaces.commands import report

    def run(args):
        raise exc

    monkeypatch.setattr(report, "run", run)


@pytest.mark.parametrize(
    ("exc", "status", "fragments"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/o/r.png"), 3, ["disk full while writing: /o/r.png"]),
        (BayeslinError("could not write chunk 3"), 2, ["could not write chunk 3"]),
        (BayeslinIOError("chunk 3 of /s was not written"), 3, ["chunk 3 of /s was not written"]),
        (OSError(errno.EIO, "Input/output error", "/s/c/0"), 3, ["I/O error: Input/output error: /s/c/0"]),
        (PermissionError(errno.EACCES, "Permission denied", "/o"), 2, ["Permission denied: /o"]),
        (ZeroDivisionError("division by zero"), 4, ["internal error while using the store at", "BAYESLIN_DEBUG=1"]),
        (KeyError("nuts_mean"), 4, ["internal error", "KeyError: 'nuts_mean'"]),
    ],
)
def test_every_exception_is_one_line_with_its_status(tmp_path, capsys, monkeypatch, exc, status, fragments) -> None:
    _raising(monkeypatch, exc)
    expect_error(capsys, ["report", str(tmp_path / "store"), "--out", str(tmp_path / "out")], status, *fragments)


def test_disk_full_wrapped_by_library_code_is_status_3() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/s/nuts_mean/c/2")
        except OSError as err:
            raise BayeslinError("could not write chunk 2 of /s") from err
    except BayeslinError as err:
        status, message = describe_failure(err, "/s")
    assert status == 3
    assert message == "disk full while writing: /s/nuts_mean/c/2 (could not write chunk 2 of /s)"
    try:
        raise BayeslinError("disk full while writing chunk 2 of /s") from OSError(errno.ENOSPC, "No space")
    except BayeslinError as err:
        assert describe_failure(err, "/s") == (3, "disk full while writing chunk 2 of /s")


def test_debug_env_prints_the_traceback_then_one_line(tmp_path, capsys, monkeypatch) -> None:
    _raising(monkeypatch, ZeroDivisionError("division by zero"))
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert main(["report", str(tmp_path / "store"), "--out", str(tmp_path / "out")]) == 4
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("error: internal error")


def test_damaged_store_metadata_names_the_store(tmp_path, capsys) -> None:
    path = tmp_path / "s.zarr"
    store.run_chunked(path, meta={"kind": "study"}, num_items=4, chunk_size=2, compute=_tiny_chunk, progress=False)
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gr')  # truncated write
    expect_error(capsys, ["report", str(path), "--out", str(tmp_path / "r")], 2, str(path))
    # a garbled compressed chunk fails inside zarr's codecs: the last-resort handler names the store
    array = zarr.open_group(str(tmp_path / "z.zarr"), mode="w").create_array("a", shape=(64,), chunks=(64,),
                                                                               dtype="float64")
    array[:] = np.arange(64.0)
    chunk = next(p for p in (tmp_path / "z.zarr" / "a").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(60))
    with pytest.raises(Exception) as info:  # whatever zarr raises
        zarr.open_array(str(tmp_path / "z.zarr" / "a"), mode="r")[:]
    status, message = describe_failure(info.value, str(tmp_path / "z.zarr"))
    assert status == 2 and message.startswith(f"cannot read the store at {tmp_path / 'z.zarr'}, it looks damaged")


def test_keyboard_interrupt_in_process(tmp_path, capsys, monkeypatch) -> None:
    _raising(monkeypatch, KeyboardInterrupt())
    (tmp_path / "s").mkdir()
    err = expect_error(capsys, ["report", str(tmp_path / "s"), "--out", str(tmp_path / "out")], 130, "interrupted")
    assert err == "error: interrupted\n"  # report only reads its store: nothing to resume
    # study/sbc: the store resumes, unless nothing was written yet
    assert describe_failure(KeyboardInterrupt(), str(tmp_path / "not-yet"), writes_store=True) == (130, "interrupted")
    assert describe_failure(KeyboardInterrupt(), str(tmp_path / "s"), writes_store=True) == (
        130, f"interrupted; the store at {tmp_path / 's'} is resumable: rerun the same command"
    )


# ----------------------------------------------------------------------------- real processes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", cli.DEBUG_ENV)}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    return env


@pytest.mark.slow  # a subprocess study (~11 s); the store-level interrupt test stays default
def test_ctrl_c_during_a_study_is_one_line_and_leaves_it_resumable(tmp_path) -> None:
    path = tmp_path / "study.zarr"
    argv = ["--cpu-devices", "1", "study", "--out", str(path), "--datasets", "2000", "--chunk-size", "4",
            "--chains", "2", "--warmup", "100", "--draws", "100", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "bayeslin_jax.interfaces.cli", *argv], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (store.is_store(path) and store.done_mask(path).any()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk finished within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == f"error: interrupted; the store at {path} is resumable: rerun the same command\n"
    done = store.done_mask(path)
    assert 1 <= done.sum() < done.size
    assert store.open_store(path, allow_incomplete=True).sizes["dataset"] == 4 * int(done.sum())


def test_end_to_end_bad_stdin_exits_2_with_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "bayeslin_jax.interfaces.cli", "fit", "-"], input=b"x,y\n1,\xff\n",
                          env=_env(), capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "error: <stdin>:2: byte 0xff at character 3 is not UTF-8; "
        "save the file as UTF-8 (plain ASCII numbers are fine)\n"
    )


def test_report_strict_exits_1_when_datasets_fail(tmp_path, capsys, monkeypatch) -> None:
    from bayeslin_jax.workflows.studies import report

    def fake_report(source, out_dir, checks, allow_incomplete=False):
        paths = {"text": tmp_path / "report.txt", "json": tmp_path / "report.json", "failed": tmp_path / "failed.csv"}
        paths["text"].write_text("report\n")
        paths["json"].write_text(json.dumps({"failed": {"count": 2}}))
        return paths

    monkeypatch.setattr(report, "write_report", fake_report)
    argv = ["report", str(tmp_path / "store"), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    capsys.readouterr()
    expect_error(capsys, [*argv, "--strict"], 1, "2 datasets failed the checks (--strict)")



def test_disk_full_inside_zarr_while_writing_a_store(tmp_path, monkeypatch) -> None:
    """ENOSPC from zarr's file store, deep inside a chunked run: classified as disk full, status 3."""
    from zarr.storage import LocalStore

    original = LocalStore.set

    async def full_disk(self, key, value):
        if "/c/" in f"/{key}":  # metadata fits, chunk data does not
            raise OSError(errno.ENOSPC, "No space left on device", f"{self.root}/{key}")
        await original(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_disk)
    with pytest.raises(Exception) as info:  # whatever the store layer makes of it
        store.run_chunked(tmp_path / "s.zarr", meta={}, num_items=4, chunk_size=2, compute=_tiny_chunk,
                          progress=False)
    status, message = describe_failure(info.value, str(tmp_path / "s.zarr"))
    assert status == 3
    assert message.startswith("disk full while writing: ") and "s.zarr" in message and "\n" not in message
