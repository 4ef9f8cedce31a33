"""Reading ``/proc``: who is running, as which uid, with which environment, under which parent.

Parsing is pure (``status_uids``, ``carries_marker``); the readers skip processes that vanish
or that we may not read, which is the normal case on a busy host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

MARKER_VAR = "GIP_RUN"


def status_uids(status: str) -> tuple[set[int], bool]:
    """Real/effective/saved/fs uids of a ``/proc/<pid>/status`` text, and whether it is a zombie."""
    uids: set[int] = set()
    zombie = False
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uids = {int(part) for part in line.split()[1:5]}
        elif line.startswith("State:"):
            zombie = line.split()[1] in ("Z", "X")
    return uids, zombie


def carries_marker(environ: bytes, marker: str) -> bool:
    """True when a NUL-separated environment block holds ``GIP_RUN=<marker>`` exactly."""
    return f"{MARKER_VAR}={marker}".encode() in environ.split(b"\0")


def all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def read(path: str, *, binary: bool = False) -> Any:
    try:
        with open(path, "rb" if binary else "r") as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None


def pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes that hold ``uid`` as any of their uids."""
    found = []
    for pid in all_pids():
        text = read(f"/proc/{pid}/status")
        if text:
            uids, zombie = status_uids(text)
            if uid in uids and not zombie:
                found.append(pid)
    return found


def pids_with_marker(marker: str) -> list[int]:
    """Live processes whose environment we can read and that carry the run's marker."""
    me = os.getpid()
    found = []
    for pid in all_pids():
        if pid == me:
            continue
        environ = read(f"/proc/{pid}/environ", binary=True)
        if environ and carries_marker(environ, marker):
            text = read(f"/proc/{pid}/status") or ""
            if not status_uids(text)[1]:
                found.append(pid)
    return found


def parents() -> dict[int, tuple[int, bool]]:
    """pid → (parent pid, zombie), from ``/proc/<pid>/stat``."""
    table = {}
    for pid in all_pids():
        text = read(f"/proc/{pid}/stat")
        if text:
            fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
            table[pid] = (int(fields[1]), fields[0] in ("Z", "X"))
    return table


def children_of(parent: int) -> list[int]:
    return [pid for pid, (ppid, _) in parents().items() if ppid == parent]


def adopted(me: int, before: frozenset[int]) -> dict[str, list[int]]:
    """Descendants of ``me`` outside the subtrees of the children it had before the run."""
    table = parents()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[str, list[int]] = {"live": [], "zombies": []}
    queue = [pid for pid in children.get(me, []) if pid not in before]
    while queue:
        pid = queue.pop()
        found["zombies" if table[pid][1] else "live"].append(pid)
        queue += children.get(pid, [])
    return found
