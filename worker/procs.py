"""Reading ``/proc``: who is running, as which uid, under which parent, with which environment.

One pass reads ``/proc/<pid>/status`` (world-readable: no ptrace right needed) into
:class:`Proc` rows; parsing is pure. Processes that vanish or that we may not read are skipped,
which is the normal case on a busy host.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MARKER_VAR = "GIP_RUN"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uids: frozenset[int]  # real, effective, saved, filesystem
    zombie: bool


def _field(status: str, name: str) -> str:
    start = status.find("\n" + name + ":")
    if start < 0:
        return ""
    end = status.find("\n", start + 1)
    return status[start + len(name) + 2:end if end >= 0 else None]


def parse_status(pid: int, status: str) -> Proc | None:
    """PURE: a ``/proc/<pid>/status`` text as a :class:`Proc` (None if it is not one)."""
    state, ppid, uids = _field(status, "State").split(), _field(status, "PPid").strip(), _field(status, "Uid").split()
    if not state or not ppid.isdigit() or len(uids) < 4:
        return None
    return Proc(pid, int(ppid), frozenset(int(u) for u in uids[:4]), state[0] in ("Z", "X"))


def status_uids(status: str) -> tuple[set[int], bool]:
    """PURE: the uids of a status text, and whether it is a zombie."""
    text = "\n" + status
    state, uids = _field(text, "State").split(), _field(text, "Uid").split()
    return {int(u) for u in uids[:4]}, bool(state) and state[0] in ("Z", "X")


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
    except OSError:  # gone, or not ours to read
        return None


def snapshot() -> list[Proc]:
    """Every process we can see, once."""
    found = []
    for pid in all_pids():
        text = read(f"/proc/{pid}/status")
        proc = parse_status(pid, "\n" + text) if text else None
        if proc:
            found.append(proc)
    return found


def pids_of_uid(uid: int, procs: Iterable[Proc] | None = None) -> list[int]:
    """Live (not zombie) processes that hold ``uid`` as any of their uids."""
    return [p.pid for p in (snapshot() if procs is None else procs) if uid in p.uids and not p.zombie]


def pids_with_marker(marker: str) -> list[int]:
    """Live processes whose environment we can read and that carry the run's marker."""
    me = os.getpid()
    found = []
    for pid in all_pids():
        environ = read(f"/proc/{pid}/environ", binary=True) if pid != me else None
        if environ and carries_marker(environ, marker):
            proc = parse_status(pid, "\n" + (read(f"/proc/{pid}/status") or ""))
            if proc and not proc.zombie:
                found.append(pid)
    return found


def children_of(parent: int, procs: Iterable[Proc] | None = None) -> list[int]:
    return [p.pid for p in (snapshot() if procs is None else procs) if p.ppid == parent]


def adopted(me: int, before: frozenset[int], procs: Iterable[Proc] | None = None) -> tuple[list[int], list[int]]:
    """(live, zombie) descendants of ``me`` outside the subtrees of its ``before`` children. PURE
    given ``procs``."""
    table = {p.pid: p for p in (snapshot() if procs is None else procs)}
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    live: list[int] = []
    zombies: list[int] = []
    queue = [pid for pid in children.get(me, []) if pid not in before]
    while queue:
        pid = queue.pop()
        (zombies if table[pid].zombie else live).append(pid)
        queue += children.get(pid, [])
    return live, zombies
