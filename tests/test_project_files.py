"""Project files: one version everywhere, the licence, py.typed, and the 0.1 module names kept by ``_MOVED``."""

from __future__ import annotations

import importlib
import re
import tomllib
import types
from pathlib import Path

import pytest

import bayeslin_jax

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_versions_agree():
    """``__version__``, pyproject.toml and the top heading of CHANGELOG.md name the same version."""
    heading = next(line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    changelog = re.match(r"## (\S+)", heading).group(1)
    assert bayeslin_jax.__version__ == PYPROJECT["project"]["version"] == changelog


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the bayeslin_jax authors" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_build_system_floor_supports_the_license_string():
    """``license = "MIT"`` (an SPDX expression, PEP 639) needs setuptools >= 77."""
    (requirement,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.search(r">=\s*(\d+)", requirement)
    assert floor and int(floor.group(1)) >= 77


def test_py_typed_is_shipped():
    assert (Path(bayeslin_jax.__file__).parent / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["bayeslin_jax"]


@pytest.mark.parametrize("name", sorted(bayeslin_jax._MOVED))
def test_moved_names_resolve(name):
    """Every 0.1 module name in ``_MOVED`` still resolves through ``bayeslin_jax.<name>``, to its new module."""
    target = importlib.import_module(f"bayeslin_jax.{bayeslin_jax._MOVED[name]}")
    value = getattr(bayeslin_jax, name)
    if name in bayeslin_jax._EXPORTS:
        # a public name now (``bl.compare`` is the function): the 0.1 module's names stay its attributes
        assert value is getattr(importlib.import_module(bayeslin_jax._EXPORTS[name]), name)
    else:
        assert isinstance(value, types.ModuleType) and value is target


def test_moved_matches_the_changelog():
    """The CHANGELOG's table of renamed modules and ``_MOVED`` name the same top-level 0.1 modules."""
    text = (ROOT / "CHANGELOG.md").read_text()
    named: set[str] = set()
    for row in re.findall(r"^\| `bayeslin_jax\.([^`]+)`[^|]*\| `bayeslin_jax\.([a-z_.]+)`", text, flags=re.M):
        old, new = row
        if "." not in old and old not in bayeslin_jax._SUBMODULES:
            named.add(old)
            assert bayeslin_jax._MOVED.get(old) == new, old
    groups = r"^\| `bayeslin_jax\.\{([^}]+)\}` \| `bayeslin_jax\.([a-z]+)\.\*`"
    for group, layer in re.findall(groups, text, flags=re.M):
        for old in (n.strip() for n in group.split(",")):
            named.add(old)
            assert bayeslin_jax._MOVED.get(old) == f"{layer}.{old}", old
    assert named, "no renamed-module table found in CHANGELOG.md"
    assert named <= set(bayeslin_jax._MOVED)
