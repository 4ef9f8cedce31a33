"""Which cleaner cleans a member account. Pluggable: ``def clean(job: CleanupJob) -> list[str]``
returns what was removed and raises on failure (the residue check runs after any cleaner).

``CLEANER`` picks it: empty → aws-nuke when its binary is there (``NUKE``: a path, or ``off``;
default ``aws-nuke`` on PATH, else the worker bundle's ``bin/aws-nuke``; the worker image installs
the first, the stock image unpacks the second), else the built-in cleaner
(:mod:`worker.cleaning.builtin`); ``builtin`` or ``aws-nuke`` force one; ``module:function``
loads a plug-in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gip.errors import ConfigError
from worker.cleaning.builtin import clean
from worker.cleaning.job import Cleaner, CleanupJob, Protection
from worker.cleaning.nuke import NukeCleaner
from worker.plugins import load_plugin

__all__ = ["Cleaner", "CleanupJob", "Protection", "clean", "find_nuke", "load_cleaner"]

# The stock image unpacks the worker bundle into /opt/app: worker/ and bin/aws-nuke side by side.
BUNDLED_NUKE = Path(__file__).resolve().parent.parent / "bin" / "aws-nuke"


def find_nuke(nuke: str, *, bundled: Path = BUNDLED_NUKE) -> str | None:
    """The aws-nuke binary to use, or None (``off``, or not installed). An empty ``nuke`` means
    ``aws-nuke`` on PATH, else ``bundled`` if it is an executable file."""
    if nuke.strip().lower() == "off":
        return None
    if nuke:
        return shutil.which(nuke)
    found = shutil.which("aws-nuke")
    if found is None and bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return found


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
