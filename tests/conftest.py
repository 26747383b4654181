"""Shared fixtures. Tests run on CPU in float32 (JAX's default), like most users."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
