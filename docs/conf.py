"""Sphinx configuration of the bayeslin_jax documentation (built by ``bash scripts/docs.sh``).

Pages are MyST markdown (``myst_nb``, which also renders the notebooks, without executing them); the API
reference is autosummary + numpydoc over the docstrings; the CLI reference is sphinx-argparse over
``bayeslin_jax.interfaces.cli.build_parser``. The numpydoc validation checks are those of ``numpydoc lint``,
read from ``pyproject.toml`` ``[tool.numpydoc_validation]``, so both enforce the same rules.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import bayeslin_jax  # noqa: E402

project = "bayeslin_jax"
author = "the bayeslin_jax authors"
copyright = "2026, the bayeslin_jax authors"
release = bayeslin_jax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
]

# generated stubs, tables and notebook copies live in _generated/ (gitignored); _build/ is the output
exclude_patterns = ["_build", "_templates", "**.ipynb_checkpoints", "_generated/tables"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# --- MyST and notebooks -------------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks' saved outputs are shown as they are (tests/test_notebook.py checks them)

# The notebooks live in notebooks/ at the repository root, outside the source folder: copy them in.
_NOTEBOOKS = DOCS / "_generated" / "notebooks"
_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
for _nb in sorted((REPO / "notebooks").glob("*.ipynb")):
    _target = _NOTEBOOKS / _nb.name
    if not _target.exists() or _target.read_bytes() != _nb.read_bytes():
        shutil.copyfile(_nb, _target)

if not (DOCS / "_generated" / "tables").is_dir():
    raise RuntimeError("docs/_generated/tables/ is missing: run 'bash scripts/docs.sh' (or scripts/docs_tables.py)")

# --- API reference ------------------------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_inherit_docstrings = False  # as numpydoc lint: a method without its own docstring is not documented
add_module_names = False

numpydoc_show_class_members = False  # autosummary's class template lists them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
_validation = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["numpydoc_validation"]
numpydoc_validation_checks = set(_validation["checks"])
numpydoc_validation_exclude = set(_validation.get("exclude", []))
numpydoc_validation_exclude_files = set(_validation.get("exclude_files", []))
numpydoc_validation_overrides = {
    key.removeprefix("override_").upper(): value for key, value in _validation.items() if key.startswith("override_")
}

# --- HTML ---------------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayeslin_jax {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


# --- numpydoc validation only of what numpydoc lint sees ---------------------------------------------------------
# Sphinx reads the docstring of every member of a module before it drops the imported ones, and numpydoc validates
# each docstring it is handed: without this, `pathlib.Path`, `typing.cast`, `jax.Array` (imported into a module)
# and the generated "Alias for field number N" of NamedTuple fields would be validated as if they were ours.
def _resolve(name: str) -> object | None:
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _foreign(name: str) -> bool:
    obj = _resolve(name)
    if obj is None:
        return False
    if type(obj).__name__ == "_tuplegetter":  # a NamedTuple field
        return True
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and not module.startswith("bayeslin_jax")


class _Excluder:
    """``numpydoc_validation_excluder``: the configured patterns, and every object defined outside the package."""

    def __init__(self, patterns):
        self.patterns = patterns

    def search(self, name: str) -> bool:
        return bool(self.patterns and self.patterns.search(name)) or _foreign(name)

    def __reduce__(self):  # Sphinx pickles the config with its environment: store the plain patterns
        import re

        return (re.compile, (self.patterns.pattern, self.patterns.flags) if self.patterns else ("(?!)",))


def _exclude_foreign(app, config) -> None:
    config.numpydoc_validation_excluder = _Excluder(config.numpydoc_validation_excluder)


def setup(app):
    app.connect("config-inited", _exclude_foreign, priority=900)  # after numpydoc's update_config (priority 500)
    return {"parallel_read_safe": True}
