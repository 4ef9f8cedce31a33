"""Which cleaner cleans a member account. Pluggable: ``def clean(job: CleanupJob) -> list[str]``
returns what was removed and raises on failure (the residue check runs after any cleaner).

``CLEANER`` picks it: empty → aws-nuke when its binary is there (``NUKE``: a path, or ``off``;
default ``aws-nuke`` on PATH; the worker image installs it), else the built-in cleaner
(:mod:`worker.cleaning.builtin`); ``builtin`` or ``aws-nuke`` force one; ``module:function``
loads a plug-in.
"""

from __future__ import annotations

import shutil

from handlers.core.errors import ConfigError
from worker.cleaning.builtin import clean
from worker.cleaning.job import Cleaner, CleanupJob, Protection
from worker.cleaning.nuke import NukeCleaner
from worker.plugins import load_plugin

__all__ = ["Cleaner", "CleanupJob", "Protection", "clean", "find_nuke", "load_cleaner"]


def find_nuke(nuke: str) -> str | None:
    """The aws-nuke binary to use, or None (``off``, or not installed)."""
    if nuke.strip().lower() == "off":
        return None
    return shutil.which(nuke or "aws-nuke")


def load_cleaner(spec: str | None, *, nuke: str = "", timeout_s: float = 1800) -> Cleaner:
    """The cleaner ``CLEANER=spec`` names (see the module docstring)."""
    spec = (spec or "").strip()
    if spec == "builtin":
        return clean
    binary = find_nuke(nuke)
    if spec == "aws-nuke":
        if binary is None:
            raise ConfigError(f"CLEANER=aws-nuke but no aws-nuke binary ({nuke or 'aws-nuke'!r} not found)")
        return NukeCleaner(binary, timeout_s=timeout_s)
    if not spec:
        return NukeCleaner(binary, timeout_s=timeout_s) if binary else clean
    return load_plugin("CLEANER", spec)  # type: ignore[no-any-return]
