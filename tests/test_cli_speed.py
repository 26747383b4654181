"""Speed a user feels: ``--help`` and input errors without JAX; the persistent compilation cache.

* ``bayeslin --help`` and a missing data file never import JAX (timed runs live in the benchmark,
  not here: the assertion is on what gets imported, which does not depend on the machine's load);
* a second ``bayeslin fit`` of the same shapes finds every program in the cache: the cache folder
  gains no entry, and the results are identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(extra)
    return env


def test_help_and_input_errors_do_not_import_jax(tmp_path) -> None:
    code = (
        "import sys, contextlib, io\n"
        "from bayeslin_jax.interfaces import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0\n"
        f"assert cli.main(['fit', {str(tmp_path / 'missing.csv')!r}]) == 2\n"
        f"assert cli.main(['study', '--out', {str(tmp_path / 'a' / 'b.zarr')!r}, '--datasets', '0']) == 2\n"
        "heavy = [m for m in ('jax', 'numpyro', 'arviz_base', 'zarr', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines), lines


@pytest.mark.slow  # two CLI processes (11 s): a speed feature, kept out of the 5-minute default suite
def test_second_fit_is_served_from_the_compile_cache(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 11)
    data = tmp_path / "data.csv"
    data.write_text("x,y\n" + "".join(f"{a},{0.3 * a + 2 + 0.1 * rng.normal()}\n" for a in x))
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "bayeslin_jax.interfaces.cli", "--cpu-devices", "1", "fit", str(data),
            "--chains", "2", "--warmup", "50", "--draws", "50"]
    entries, results = [], []
    for run in range(2):
        out = tmp_path / f"fit{run}.json"
        proc = subprocess.run([*argv, "--json", str(out)], env=_env(BAYESLIN_CACHE_DIR=str(cache)),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        entries.append(sorted(p.name for p in Path(cache).iterdir()))
        results.append(json.loads(out.read_text())["features"])
    assert entries[0], "the first run cached nothing"
    assert entries[1] == entries[0], "the second run compiled programs the first one had cached"
    assert results[1] == results[0]
