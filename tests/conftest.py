"""Shared fixtures. Tests run on CPU in float32 (JAX's default), like most users."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The CLI's persistent compilation cache is off in tests that call it in-process (it would point this
# whole process's JAX at ~/.cache); tests/test_cli_speed.py turns it on in subprocesses of its own.
os.environ.setdefault("BAYESLIN_CACHE_DIR", "")
