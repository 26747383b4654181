"""Runs the code blocks of README.md, CONTRIBUTING.md and docs/**/*.md through sybil (``scripts/test_examples.sh``).

The rules (CONTRIBUTING.md states them for authors):

* a fenced ``python`` block is executed; the blocks of one file share one namespace, in order;
* a fenced ``bash`` block is executed with ``bash -euo pipefail``, with ``$REPO/.venv/bin`` first on ``PATH``;
* each file runs in a fresh temporary directory (the working directory of both), with ``REPO`` (the repository
  root) in the environment;
* a block preceded by ``<!-- skip: next "why" -->`` is only syntax-checked (``compile`` / ``bash -n``);
* other languages (``text``, ``json``, ``toml``, MyST directives such as ``{toctree}``) are not run. A fence without
  a language, or with an alias of a runnable one (``sh``, ``console``, ``py``, ...), is a collection error, and so
  is a malformed skip directive or one that is not followed by a python or bash block.

Only those files are collected, and only when named on the command line (``pytest README.md CONTRIBUTING.md
docs``): the default suite (``testpaths = ["tests"]``) collects nothing from here.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.doctest import DocTestEvaluator
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.abstract.doctest import DocTestStringParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parent
EXCLUDED_DOC_DIRS = ("_build", "_generated")
BASH_TIMEOUT_S = 600
#: fence languages that look runnable but are not run: refused so that no example silently goes untested
REFUSED_LANGUAGES = {"", "sh", "shell", "console", "zsh", "shell-session", "py", "python3", "pycon", "ipython"}
SKIP_DIRECTIVE = re.compile(r'<!--\s*skip:\s*next\s+"(?P<why>[^"\n]*\S[^"\n]*)"\s*-->')
ANY_SKIP = re.compile(r"^[ \t]*<!--\s*skip\b.*?-->", re.DOTALL | re.MULTILINE)  # on its own line, not in `code`
DOCTEST_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def is_doc(path: Path) -> bool:
    """True for README.md, CONTRIBUTING.md and docs/**/*.md (not docs/_build, docs/_generated)."""
    try:
        parts = Path(path).resolve().relative_to(REPO).parts
    except ValueError:
        return False
    if not parts or not parts[-1].endswith(".md"):
        return False
    if len(parts) == 1:
        return parts[0] in ("README.md", "CONTRIBUTING.md")
    return parts[0] == "docs" and parts[1] not in EXCLUDED_DOC_DIRS


# ---------------------------------------------------------------------------------------------
# Evaluators
# ---------------------------------------------------------------------------------------------

_DOC_STATE: dict[int, dict] = {}  # id(namespace) -> the document's temp dir, saved cwd and environment


def _compile_cache() -> None:
    """The python blocks use JAX's persistent compilation cache, as the ``bayeslin`` CLI of the bash blocks does.

    Same folder and rule as ``interfaces.cli.default_cache_dir`` (``$BAYESLIN_CACHE_DIR``; empty: off). Only this
    process's documentation run is affected: the default suite never calls it.
    """
    folder = os.environ.get("BAYESLIN_CACHE_DIR")
    if folder == "":
        return
    if folder is None:
        folder = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayeslin" / "jax")
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    else:  # read when the first block imports JAX
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def _setup(namespace: dict) -> None:
    workdir = tempfile.mkdtemp(prefix="bayeslin-doc-")
    _DOC_STATE[id(namespace)] = {"workdir": workdir, "cwd": os.getcwd(), "env": dict(os.environ)}
    os.environ["REPO"] = str(REPO)
    os.environ["MPLBACKEND"] = "Agg"
    _compile_cache()
    os.chdir(workdir)


def _teardown(namespace: dict) -> None:
    state = _DOC_STATE.pop(id(namespace))
    os.chdir(state["cwd"])
    os.environ.clear()
    os.environ.update(state["env"])
    shutil.rmtree(state["workdir"], ignore_errors=True)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_bash(example: Example) -> str | None:
    """Run the block with ``bash -euo pipefail`` in the document's temp dir; a non-zero exit is a failure."""
    workdir = _DOC_STATE[id(example.namespace)]["workdir"]
    env = dict(os.environ, REPO=str(REPO), MPLBACKEND="Agg")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", str(example.parsed)], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BASH_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return f"bash block timed out after {BASH_TIMEOUT_S} s; output:\n{_tail(output)}"
    if done.returncode != 0:
        return f"bash block exited with status {done.returncode}; output:\n{_tail(done.stdout)}"
    if os.environ.get("BAYESLIN_DOCS_ECHO"):  # show the output of passing blocks too (with pytest -s)
        print(done.stdout)
    return None


def check_bash_syntax(example: Example) -> str | None:
    """``bash -n``: a skipped block must still parse."""
    done = subprocess.run(["bash", "-n", "-c", str(example.parsed)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        return f"skipped bash block does not parse (bash -n):\n{done.stdout}"
    return None


def check_python_syntax(example: Example) -> None:
    """``compile()``: a skipped block must still parse (line numbers are the document's)."""
    source = str(example.parsed)
    if source.lstrip().startswith(">>>"):
        source = doctest.script_from_examples(source)
    compile("\n" * example.line + source, example.path, "exec", dont_inherit=True)


# ---------------------------------------------------------------------------------------------
# Parser: fenced blocks, their language and the skip directive before them
# ---------------------------------------------------------------------------------------------


class FencedBlocks:
    """Yields a region per ``python`` / ``bash`` block; checks every fence and every skip directive."""

    def __init__(self) -> None:
        self.lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE),
                                             mapping={"info": "info", "source": "source"})
        self.python = PythonEvaluator()
        self.doctest = DocTestStringParser(DocTestEvaluator(DOCTEST_FLAGS))

    def __call__(self, document: Document) -> Iterable[Region]:
        text = document.text
        name = Path(document.path).name
        followed: set[int] = set()  # end offsets of skip directives that precede a runnable block
        for region in self.lexer(document):
            info = str(region.lexemes["info"]).strip()
            language = info.split()[0] if info else ""
            line = text.count("\n", 0, region.start) + 1
            if language in REFUSED_LANGUAGES:
                shown = repr(language) if language else "no language"
                raise ValueError(f"{name}, line {line}: a fenced block with {shown}: use ```python or ```bash "
                                 "(run), or ```text (not run); see CONTRIBUTING.md")
            if re.fullmatch(r"\{code(-block|-cell)?\}", language) and re.search(r"\b(python|bash)\b", info):
                raise ValueError(f"{name}, line {line}: write a plain ```python / ```bash block, not {info!r}, "
                                 "so that it is run")
            before = text[:region.start].rstrip()
            skip = None
            if before.endswith("-->"):
                line_start = before.rfind("\n", 0, before.rfind("<!--")) + 1
                skip = ANY_SKIP.fullmatch(before, line_start)
            if language not in ("python", "bash"):
                continue
            source = region.lexemes["source"]
            if skip is not None:
                if not SKIP_DIRECTIVE.fullmatch(skip.group(0).strip()):
                    raise ValueError(f"{name}, line {line}: malformed skip directive {skip.group(0)!r}: write "
                                     '<!-- skip: next "why" --> with a reason')
                followed.add(skip.end())
                region.parsed = source
                region.evaluator = check_python_syntax if language == "python" else check_bash_syntax
                yield region
            elif language == "bash":
                region.parsed = source
                region.evaluator = run_bash
                yield region
            elif source.lstrip().startswith(">>>"):
                for doctest_region in self.doctest(source, document.path):
                    doctest_region.adjust(region, source)
                    yield doctest_region
            else:
                region.parsed = source
                region.evaluator = self.python
                yield region
        for match in ANY_SKIP.finditer(text):
            if match.end() not in followed:
                line = text.count("\n", 0, match.start()) + 1
                raise ValueError(f"{name}, line {line}: {match.group(0)!r} is not directly followed by a "
                                 '```python or ```bash block (or is malformed: <!-- skip: next "why" -->)')


DOCS = Sybil(parsers=[FencedBlocks()], setup=_setup, teardown=_teardown, name="docs")
DOCS.should_parse = is_doc  # type: ignore[method-assign]  # our selection instead of sybil's fnmatch patterns
pytest_collect_file = DOCS.pytest()
