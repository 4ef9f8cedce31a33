"""Per-run identity, and proof that nothing of a run is left once it ends.

Two modes (docs/processor.md, "Isolation"):

- ``uid``, when the worker is root: each run gets a uid and gid of its own from
  ``RUN_UID_RANGE``, held with an flock for the whole run, so that workers sharing a host
  never share one. The run's directory is that uid's alone (0700). At the end every process
  of the uid is killed and a ``/proc`` scan checks that none is left.
- ``marker``, when it is not (local mode as a normal user): the run's environment carries
  ``GIP_RUN=<marker>``, and at the end every process whose ``/proc/<pid>/environ`` carries it
  is killed. Best effort: a process that re-executes with a fresh environment drops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from gip.errors import AwsError, ConfigError
from gip.isolation import DEFAULT_UID_RANGE, MARKER, UID, detect_mode, parse_uid_range
from worker.procs import (
    MARKER_VAR,
    Proc,
    adopted,
    all_pids,
    children_of,
    pids_of_uid,
    pids_with_marker,
    read,
    snapshot,
)

# World-writable places a run can leave files in outside its own directory.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36


class Leftover(AwsError):
    """Processes of a finished run survived the kill: an infrastructure error, never a verdict."""

    def __init__(self, identity: str, pids: list[int]) -> None:
        super().__init__(f"leftover processes of run {identity} survived the kill: pids {pids[:10]}")
        self.identity, self.pids = identity, pids


# --- pure ---------------------------------------------------------------------------------------
def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# --- the policy and one run's box ---------------------------------------------------------------
@dataclass(frozen=True)
class Isolation:
    """How runs are isolated on this worker. Stateless: a run's state is its :class:`Box`."""

    mode: str
    uids: range = field(default_factory=lambda: parse_uid_range(DEFAULT_UID_RANGE))
    lock_dir: str = ""
    verify_s: float = 5.0
    note: str = ""  # why a root worker fell back to ``marker``

    @classmethod
    def detect(cls, uid_range: str = "") -> Isolation:
        """``uid`` when the worker is root, else ``marker`` (:func:`gip.isolation.detect_mode`,
        which local mode's start-up notice shares). Raises ConfigError on a bad range.

        Root whose python another uid cannot execute: ``marker``, with a ``note`` saying why."""
        try:
            mode, note = detect_mode(uid_range)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if mode == MARKER:
            return cls(MARKER, note=note)
        isolation = cls(UID, uids=parse_uid_range(uid_range))
        _lock_dir(isolation)  # a bad lock directory is a start-up error, not a failed run
        return isolation

    def open(self) -> Box:
        """A fresh identity and a directory that belongs to it alone."""
        _become_subreaper()
        if self.mode == UID:
            return _open_uid_box(self)
        return Box(self, uid=None, gid=None, marker=_new_marker(), workdir=_workdir(None), lock_fd=None,
                   before=frozenset(children_of(os.getpid())))

    def leftovers(self) -> list[int]:
        """Processes of ended runs still alive: in ``uid`` mode, of any idle uid of the range;
        in ``marker`` mode, of this worker's markers (call it between runs)."""
        if self.mode == MARKER:
            prefix = f"{MARKER_VAR}={os.getpid()}.".encode()
            return [pid for pid in all_pids() if pid != os.getpid()
                    and any(v.startswith(prefix) for v in (read(f"/proc/{pid}/environ", binary=True) or b"").split(b"\0"))]
        procs = snapshot()
        return [pid for uid in _busy_uids(self.uids, procs) if _idle(self, uid) for pid in pids_of_uid(uid, procs)]

    def clean(self) -> bool:
        """Kill what :meth:`leftovers` finds; True when nothing is left."""
        for _ in range(3):
            left = self.leftovers()
            if not left:
                return True
            _signal_all(left, signal.SIGKILL)
            time.sleep(0.05)
        return not self.leftovers()


@dataclass
class Box:
    """One run's identity: uid/gid (``uid`` mode), marker, directory and the uid's lock.

    In ``marker`` mode a worker process runs one box at a time: a box's kill also takes the
    worker's children started after it opened."""

    isolation: Isolation
    uid: int | None
    gid: int | None
    marker: str
    workdir: str
    lock_fd: int | None
    before: frozenset[int] = frozenset()  # the worker's children before the run

    @property
    def identity(self) -> str:
        return f"uid {self.uid}" if self.uid is not None else f"marker {self.marker}"

    def own(self, path: str) -> None:
        """Give ``path`` to the run's uid, readable by it alone."""
        os.chmod(path, 0o700 if os.path.isdir(path) else 0o600)
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def popen_kwargs(self) -> dict[str, Any]:
        """What ``subprocess.Popen`` needs to start a process as this run."""
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "preexec_fn": _no_new_privs}

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the run until a scan finds none, within ``verify_s``.
        Returns what is still alive (empty: verified)."""
        deadline = time.monotonic() + self.isolation.verify_s
        while True:
            if self.uid is not None:
                _kill_as(self.uid, self.gid or self.uid)
                procs = snapshot()
                self._reap_adopted(procs)
                left = pids_of_uid(self.uid, procs)
            else:
                left = self._marked_or_adopted()
                _signal_all(left, signal.SIGSTOP)  # stopped first, so none forks while the rest die
            _signal_all(left, signal.SIGKILL)
            if not left:
                return []
            if time.monotonic() >= deadline:
                time.sleep(0.05)
                return pids_of_uid(self.uid) if self.uid is not None else self._marked_or_adopted()
            time.sleep(0.01)

    def _reap_adopted(self, procs: list[Proc] | None = None) -> list[int]:
        """Reap the run's orphans the worker adopted that are dead; return those still alive.
        With a uid, only that uid's (another run's child may be waiting for its own wait())."""
        if self.uid is not None:
            procs = [p for p in (snapshot() if procs is None else procs) if self.uid in p.uids or p.ppid != os.getpid()]
        live, zombies = adopted(os.getpid(), self.before, procs)
        for pid in zombies:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        return live

    def _marked_or_adopted(self) -> list[int]:
        """Marker mode: the marked processes, and the orphans adopted during the run (found even
        after they dropped the marker)."""
        return sorted(set(pids_with_marker(self.marker)) | set(self._reap_adopted()))

    def close(self) -> None:
        """Verify (killing again whatever a scan still finds), remove the run's files, free the
        uid. Raises :class:`Leftover`."""
        found = pids_of_uid(self.uid) if self.uid is not None else self._marked_or_adopted()
        left = self.kill_all() if found else []  # nothing of the run left: nothing can start again
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.uid is not None and not left:
            _remove_files_of(self.uid)
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # a uid with leftovers stays busy: the next allocation skips it
            self.lock_fd = None
        if left:
            raise Leftover(self.identity, left)


def _become_subreaper() -> None:
    """Orphans of a run are re-parented to the worker, not to init (PR_SET_CHILD_SUBREAPER):
    the kill finds them even when they dropped the marker, and the worker reaps them (as the
    container's pid 1 it would get them anyway, and unreaped zombies would use up pids)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _new_marker() -> str:
    # The worker's pid first, so that leftovers() finds this worker's ended runs.
    return f"{os.getpid()}.{secrets.token_hex(12)}"


def _workdir(box_uid: int | None) -> str:
    return tempfile.mkdtemp(prefix=f"gip-run-{box_uid}-" if box_uid is not None else "gip-run-")


def _lock_dir(isolation: Isolation) -> str:
    """Root-only: an attacker-made directory in /tmp must not decide who holds which uid."""
    path = isolation.lock_dir or ("/run/gip-sandbox" if os.path.isdir("/run") else
                                  os.path.join(tempfile.gettempdir(), "gip-sandbox"))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ConfigError(f"{path} must be a directory of uid {os.geteuid()} with mode 0700")
    return path


def _lock(isolation: Isolation, uid: int) -> int | None:
    fd = os.open(os.path.join(_lock_dir(isolation), str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _idle(isolation: Isolation, uid: int) -> bool:
    fd = _lock(isolation, uid)
    if fd is None:
        return False
    os.close(fd)
    return True


def _busy_uids(uids: range, procs: list[Proc] | None = None) -> set[int]:
    return {uid for p in (snapshot() if procs is None else procs) if not p.zombie for uid in p.uids if uid in uids}


def _open_uid_box(isolation: Isolation) -> Box:
    procs = snapshot()
    busy = _busy_uids(isolation.uids, procs)
    start = random.randrange(len(isolation.uids))
    for offset in range(len(isolation.uids)):
        uid = isolation.uids[(start + offset) % len(isolation.uids)]
        if uid in busy:
            continue  # a live process holds it: in use, or a leftover (then it stays out of use)
        fd = _lock(isolation, uid)
        if fd is None:
            continue
        box = Box(isolation, uid=uid, gid=uid, marker=_new_marker(), workdir=_workdir(uid), lock_fd=fd,
                  before=frozenset(children_of(os.getpid(), procs)))
        box.own(box.workdir)
        return box
    raise AwsError(f"no free uid in RUN_UID_RANGE {isolation.uids.start}-{isolation.uids.stop - 1}")


def _kill_as(uid: int, gid: int) -> None:
    """kill(-1, SIGKILL) sent *as* the uid: the kernel reaches all of its processes in one
    pass, which a fork loop cannot outrun the way it can a scan-then-kill."""
    kill = shutil.which("kill", path="/usr/bin:/bin")
    argv = [kill, "-KILL", "-1"] if kill else [sys.executable, "-S", "-c", "import os; os.kill(-1, 9)"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, user=uid, group=gid, extra_groups=[], env={}, cwd="/", timeout=5,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _remove_files_of(uid: int) -> None:
    """A later run may get the same uid: what this one left in shared temp dirs goes."""
    for base in SHARED_TMP:
        with contextlib.suppress(OSError), os.scandir(base) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


def _load_prctl() -> Any:
    # Resolved once here: the child between fork and exec must not load libraries.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _no_new_privs() -> None:
    """In the child: no setuid binary can give it another uid (which the kill would miss)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
