"""The API reference covers the public names, and each public function or class shows an example (no Sphinx build)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import bayeslin_jax

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _autosummary_entries() -> set[str]:
    """The names listed in the autosummary directives of docs/api.md."""
    names: set[str] = set()
    for block in re.findall(r"\.\. autosummary::\n((?:   .*\n|\n)+)", API_PAGE.read_text()):
        names |= {line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(":")}
    return names


def test_api_page_lists_every_public_name():
    missing = [name for name in bayeslin_jax.__all__ if name not in _autosummary_entries()]
    assert not missing, f"docs/api.md lacks {missing}"


@pytest.mark.parametrize(
    "name", [n for n in bayeslin_jax.__all__ if inspect.isfunction(getattr(bayeslin_jax, n))
             or inspect.isclass(getattr(bayeslin_jax, n))]
)
def test_public_name_has_an_examples_section(name):
    doc = inspect.getdoc(getattr(bayeslin_jax, name)) or ""
    assert re.search(r"^Examples\n-{8,}\n", doc, flags=re.M), f"bayeslin_jax.{name}: no numpydoc Examples section"
    assert ">>> " in doc.split("Examples", 1)[1], f"bayeslin_jax.{name}: the Examples section has no doctest"
