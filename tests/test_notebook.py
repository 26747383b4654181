"""notebooks/tutorial.ipynb executes top to bottom (nbclient, ``-m slow``), so it can never silently break.

The notebook carries its own checks (NUTS vs exact within a few MCSE, the true degree winning by evidence,
sigma vs the quadrature reference) as ``assert`` cells, so executing it tests real numbers.

The kernel is this interpreter (``sys.executable``): the test writes a kernelspec into a temporary
``JUPYTER_PATH``, so it needs no ``ipykernel install`` and cannot pick up some other Python.

Regenerate the saved outputs with ``python tests/test_notebook.py`` (executes and writes in place).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"
KERNEL_NAME = "bayeslin-test-python"
TIMEOUT_S = 600  # per cell


def write_kernelspec(jupyter_dir: Path) -> None:
    """A kernelspec named :data:`KERNEL_NAME` under ``jupyter_dir/kernels`` running this interpreter."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bayeslin_jax (test)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def execute(jupyter_dir: Path) -> nbformat.NotebookNode:
    """Execute the notebook in its own folder with the test kernelspec; returns the executed notebook."""
    write_kernelspec(jupyter_dir)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_dir), os.environ.get("JUPYTER_PATH")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return nb


def test_saved_notebook_has_outputs():
    """The committed notebook is saved with its outputs (figures included), so it reads without running."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)  # every cell was run
    images = sum("image/png" in out.get("data", {}) for cell in code for out in cell.outputs)
    assert images >= 12
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]


@pytest.mark.slow  # 30 s of the 5-minute default budget; the saved outputs are checked by default
def test_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))  # restored after the test
    nb = execute(tmp_path / "jupyter")
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    # The key numbers made it into the outputs: the comparison table and the sigma table.
    text = "\n".join(out.get("data", {}).get("text/plain", "") for out in outputs)
    assert "log_evidence" in text and "exact (quadrature)" in text


if __name__ == "__main__":  # python tests/test_notebook.py: execute and save the outputs in place
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        executed = execute(Path(tmp))
        nbformat.write(executed, NOTEBOOK)
        print(f"executed and saved {NOTEBOOK} in {time.perf_counter() - start:.1f} s")
