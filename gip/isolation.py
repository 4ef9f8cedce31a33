"""How a run is kept apart from the process that starts it: what the worker and local mode share.

The worker's sandbox (worker/sandbox.py) gives each run its own uid when it is root, or a
marker in the run's environment when it is not (docs/processor.md, "Isolation"). Local mode
prints a notice when runs will not get their own uid, and makes its supervisor non-dumpable as
the worker does. Both decide from here, so that the library never imports the worker tree.
"""

from __future__ import annotations

import os
import stat
import sys

UID, MARKER = "uid", "marker"
DEFAULT_UID_RANGE = "200000-200999"
_PR_SET_DUMPABLE = 4


def parse_uid_range(spec: str) -> range:
    """Pure: ``first-last`` (inclusive), both above the system's ids. Raises ValueError."""
    first, sep, last = (spec or DEFAULT_UID_RANGE).partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise ValueError(f"RUN_UID_RANGE={spec!r} is not 'first-last', e.g. {DEFAULT_UID_RANGE}")
    lo, hi = int(first), int(last)
    if not 1000 <= lo <= hi < 2**31 - 1:
        raise ValueError(f"RUN_UID_RANGE={spec!r} must be ascending, from 1000 up, below 2^31-1")
    return range(lo, hi + 1)


def reachable_by_others(path: str) -> bool:
    """True when a uid with no groups can execute ``path`` (every parent o+x, the file o+rx)."""
    real = os.path.realpath(path)
    try:
        if os.stat(real).st_mode & 0o005 != 0o005:
            return False
        parent = os.path.dirname(real)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def detect_mode(uid_range: str = "") -> tuple[str, str]:
    """``(UID, "")`` when this process is root and another uid can execute its python, else
    ``(MARKER, note)``; the note says why a root process fell back (empty when not root).

    Raises ValueError on a bad ``uid_range`` when root, the only case in which it is used. Root
    whose python no other uid can execute (a pyenv under a 0700 ``/root``) cannot run python
    snippets as a run uid."""
    if os.geteuid() != 0:
        return MARKER, ""
    parse_uid_range(uid_range)
    if not reachable_by_others(sys.executable):
        return MARKER, (f"{os.path.realpath(sys.executable)} cannot be executed by another uid "
                        "(a parent directory is not o+x): runs are NOT given their own uid")
    return UID, ""


def make_not_dumpable() -> None:
    """PR_SET_DUMPABLE=0: this process's memory and ``/proc/<pid>/environ`` become unreadable to
    same-uid processes (only CAP_SYS_PTRACE can read them). Linux only; a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
