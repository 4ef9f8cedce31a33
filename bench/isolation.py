"""Escaped processes after 100 hostile runs (goal: 0).

Each run's snippet tries every way out we know of a process group and a run's end: a double
fork into a new session, ``setsid``, ``nohup``, a re-exec with an empty environment (drops the
marker), a fan-out of children, all ignoring SIGTERM and SIGHUP. Runs end by exit, by
timeout and by cancel in turn. After each run, every pid the snippet reported that is still
alive counts as escaped (and, with per-run uids, every live process of the run's uid).

Run: ``.venv/bin/python bench/isolation.py [runs]`` (per-run uids need root; otherwise only
the marker mode is measured). Anything that escaped is killed at the end.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from gip.domain.repro import SHELL
from worker import procs
from worker.runner import Limits, run_snippet
from worker.sandbox import MARKER, UID, Isolation, Leftover

HOSTILE = """
( trap '' TERM HUP; setsid sh -c 'trap "" TERM HUP; echo $$ >> pids; while :; do sleep 1; done' & ) &
setsid sh -c 'trap "" TERM HUP; echo $$ >> pids; exec sleep 300' &
nohup sh -c 'trap "" TERM HUP; echo $$ >> pids; sleep 300' > /dev/null 2>&1 &
setsid env -i sh -c 'trap "" TERM HUP; echo $$ >> '"$PWD"'/pids; exec sleep 300' &
for i in 1 2 3 4; do ( trap '' TERM HUP; sleep 300 & echo $! >> pids; wait ) & done
for i in $(seq 100); do [ "$(wc -l < pids 2>/dev/null || echo 0)" -ge 8 ] && break; sleep 0.02; done
echo "who $(id -u)"
echo "pids $(cat pids | tr '\\n' ' ')"
"""
ENDINGS = ("exit", "timeout", "cancel")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return not procs.status_uids(handle.read())[1]
    except FileNotFoundError:
        return False


def hostile_runs(mode: str, runs: int) -> tuple[int, int, list[int]]:
    """(escaped processes, runs reported as Leftover, the escaped pids)."""
    isolation = Isolation(mode)
    escaped: list[int] = []
    leftovers = 0
    for n in range(runs):
        ending = ENDINGS[n % len(ENDINGS)]
        cancel = threading.Event()
        if ending == "cancel":
            threading.Timer(0.6, cancel.set).start()
        code = HOSTILE + ("exit 0\n" if ending == "exit" else "sleep 300\n")
        limits = Limits(timeout_s=0.6 if ending == "timeout" else 30, kill_grace_s=0.1, isolation=isolation)
        try:
            result = run_snippet(SHELL, code, credentials={}, region="us-east-1", limits=limits, cancel=cancel)
        except Leftover as exc:  # counted as escaped below, through its pids
            leftovers += 1
            escaped += exc.pids
            continue
        lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.strip()}
        pids = [int(p) for p in lines.get("pids", [])]
        alive = [pid for pid in pids if _alive(pid)]
        if mode == UID and lines.get("who"):
            alive += [pid for pid in procs.pids_of_uid(int(lines["who"][0])) if pid not in alive]
        escaped += alive
    return len(set(escaped)), leftovers, sorted(set(escaped))


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    modes = [UID, MARKER] if os.geteuid() == 0 else [MARKER]
    for mode in modes:
        started = time.monotonic()
        count, leftovers, pids = hostile_runs(mode, runs)
        print(f"isolation {mode:<6}: {count} escaped process(es) after {runs} hostile runs "
              f"({leftovers} run(s) reported as leftover; {time.monotonic() - started:.1f}s)")
        for pid in pids:  # the bench must not leave them either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
