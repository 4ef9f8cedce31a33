"""Run one snippet in a subprocess: clean environment, own identity, timeout, output cap.

The child gets ONLY the member-account credentials, the region, the run's marker and
PATH/HOME/LANG basics (plus ``AWS_ENDPOINT_URL`` when the worker itself runs against a local
endpoint: it is an address, not a secret). It never sees the worker's own credentials, the ECS
credential URI or the GitHub token: the environment is built from an allow-list, never by
copying ``os.environ``.

Who the child runs as, and how everything it started is killed and the kill verified when the
run ends (exit, timeout, cancel), is :mod:`worker.sandbox`. A survivor is :class:`Leftover`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gip.domain.repro import JAVASCRIPT, PYTHON, SHELL, TYPESCRIPT
from gip.isolation import make_not_dumpable
from worker.sandbox import MARKER_VAR, Box, Isolation

if TYPE_CHECKING:
    from worker.credserver import CredentialServer

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SUFFIX = {SHELL: ".sh", PYTHON: ".py", JAVASCRIPT: ".js", TYPESCRIPT: ".ts"}
_POLL_S = 0.05


@dataclass(frozen=True)
class Limits:
    """Wall-clock timeout, output cap (bytes kept; the rest is counted and dropped), and how
    runs are isolated (None: :meth:`Isolation.detect`, per-run uids when the worker is root)."""

    timeout_s: float = 900.0
    output_cap: int = 1_000_000
    kill_grace_s: float = 2.0
    isolation: Isolation | None = None


@dataclass(frozen=True)
class Interpreters:
    """Where the interpreters are. ``None`` means absent on this worker."""

    bash: str | None
    python: str
    node: str | None
    node_version: tuple[int, ...] | None = None
    tsx: str | None = None

    @classmethod
    def discover(cls) -> Interpreters:
        node = shutil.which("node")
        return cls(bash=shutil.which("bash"), python=sys.executable, node=node,
                   node_version=_node_version(node), tsx=shutil.which("tsx"))


@dataclass(frozen=True)
class RunResult:
    """What the child did. ``could_not_start`` is set when it never ran (broken repro)."""

    command: tuple[str, ...]
    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    truncated_bytes: int = 0
    could_not_start: str | None = None

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


class Unavailable(Exception):
    """No interpreter on this worker can run the snippet's language (not the author's fault)."""


def child_env(credentials: Mapping[str, str], *, region: str, home: str, marker: str = "",
              endpoint_url: str | None = None, container: tuple[str, str] | None = None,
              version: str | None = None) -> dict[str, str]:
    """The child's whole environment: member credentials, region, the run's marker and the
    basics. PURE.

    ``container`` = (uri, token) of a :class:`worker.credserver.CredentialServer`: the member
    credentials then come from there (refreshable) instead of static keys."""
    if container is not None:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": container[0],
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": container[1]}
    else:
        env = {key: credentials[key] for key in _CREDENTIAL_KEYS if credentials.get(key)}
    env.update({
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,  # boto3 reads this one; the CLI and JS SDK read AWS_REGION
        "AWS_EC2_METADATA_DISABLED": "true",  # never fall back to the host's own role
        "PATH": f"{os.path.dirname(sys.executable)}:{SAFE_PATH}",
        "HOME": home,
        "TMPDIR": os.path.join(home, "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    })
    if marker:
        env[MARKER_VAR] = marker
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    if version:
        env["REPRO_VERSION"] = version
    return env


def command_for(language: str, path: str, interpreters: Interpreters) -> list[str]:
    """The exact argv that runs ``path``. Raises :class:`Unavailable` when nothing can."""
    if language == SHELL:
        if not interpreters.bash:
            raise Unavailable("bash is not installed on this worker")
        return [interpreters.bash, "-euo", "pipefail", path]
    if language == PYTHON:
        return [interpreters.python, path]
    if language == JAVASCRIPT:
        if not interpreters.node:
            raise Unavailable("node is not installed on this worker, so a javascript snippet cannot run")
        return [interpreters.node, path]
    if language == TYPESCRIPT:
        if interpreters.tsx:
            return [interpreters.tsx, path]
        if interpreters.node and (interpreters.node_version or (0,)) >= (22, 6):
            return [interpreters.node, "--experimental-strip-types", path]
        found = f"node {'.'.join(map(str, interpreters.node_version))}" if interpreters.node_version else "no node"
        raise Unavailable(f"a typescript snippet needs tsx or node >= 22.6 and this worker has {found}")
    raise Unavailable(f"no interpreter for {language!r}")


def syntax_check(language: str, path: str, code: str, interpreters: Interpreters,
                 env: Mapping[str, str], cwd: str, box: Box | None = None) -> str | None:
    """Return why the snippet cannot even be parsed, or None. Nothing of it is executed."""
    if language == PYTHON:
        try:
            compile(code, path, "exec")
        except (SyntaxError, ValueError) as exc:
            return f"python syntax error: {exc}"
        return None
    if language == SHELL and interpreters.bash:
        argv = [interpreters.bash, "-n", path]
    elif language == JAVASCRIPT and interpreters.node:
        argv = [interpreters.node, "--check", path]
    else:
        return None
    try:
        done = subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, text=True,  # type: ignore[call-overload]
                              timeout=30, stdin=subprocess.DEVNULL, check=False,
                              **(box.popen_kwargs() if box else {}))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"syntax check failed to run: {exc}"
    if done.returncode != 0:
        return f"{language} syntax error: {(done.stderr or done.stdout).strip()[-500:]}"
    return None


def run_snippet(
    language: str,
    code: str,
    *,
    credentials: Mapping[str, str],
    region: str,
    limits: Limits = Limits(),
    interpreters: Interpreters | None = None,
    cancel: threading.Event | None = None,
    endpoint_url: str | None = None,
    credserver: CredentialServer | None = None,
    clock: Callable[[], float] = time.monotonic,
    version: str | None = None,
) -> RunResult:
    """Run the snippet in a fresh directory under the run's own identity; afterwards kill
    everything of that identity and verify it. Raises :class:`worker.sandbox.Leftover`."""
    interpreters = interpreters or Interpreters.discover()
    box = (limits.isolation or Isolation.detect()).open()
    try:
        tmp = os.path.join(box.workdir, "tmp")
        os.mkdir(tmp)
        box.own(tmp)
        path = os.path.join(box.workdir, "snippet" + _SUFFIX.get(language, ""))
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(code if code.endswith("\n") else code + "\n")
        box.own(path)
        container = None
        if credserver is not None:
            credserver.allow_uid(box.uid)  # another run's uid is refused even with the token
            container = (credserver.uri, credserver.token)
        env = child_env(credentials, region=region, home=box.workdir, marker=box.marker,
                        endpoint_url=endpoint_url, container=container, version=version)
        argv = command_for(language, path, interpreters)
        broken = syntax_check(language, path, code, interpreters, env, box.workdir, box)
        if broken:
            return RunResult(tuple(argv), None, "", 0.0, could_not_start=broken)
        return _run(argv, env=env, box=box, limits=limits, cancel=cancel, clock=clock)
    finally:
        box.close()


def _run(argv: list[str], *, env: dict[str, str], box: Box, limits: Limits,
         cancel: threading.Event | None, clock: Callable[[], float]) -> RunResult:
    started = clock()
    try:
        child = subprocess.Popen(argv, env=env, cwd=box.workdir, stdin=subprocess.DEVNULL,  # type: ignore[call-overload]
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True, **box.popen_kwargs())
    except OSError as exc:
        return RunResult(tuple(argv), None, "", 0.0, could_not_start=f"{argv[0]}: {exc.strerror or exc}")
    capture = _Capture(limits.output_cap)
    reader = threading.Thread(target=capture.drain, args=(child.stdout,), daemon=True)
    reader.start()
    timed_out = interrupted = False
    while child.poll() is None:
        if clock() - started >= limits.timeout_s:
            timed_out = True
        elif cancel is not None and cancel.is_set():
            interrupted = True
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_POLL_S)
            continue
        kill_group(child, grace_s=limits.kill_grace_s)  # the snippet's own group may exit cleanly
        break
    duration = clock() - started
    kill_group(child, grace_s=0)
    box.kill_all()  # strays (setsid, double fork) hold the output pipe; verified in box.close()
    reader.join(timeout=5)
    code = child.returncode
    exit_code = 124 if timed_out else (128 - code if code is not None and code < 0 else code)
    return RunResult(tuple(argv), exit_code, capture.text(), round(duration, 3),
                     timed_out=timed_out, interrupted=interrupted, truncated_bytes=capture.dropped)


def protect_worker_process() -> None:
    """Make the worker's own memory and ``/proc/<pid>/environ`` unreadable to its children.

    The worker's environment holds what the snippet must never see (the ECS credentials URI,
    in local mode the management keys). A same-user child could otherwise read them from
    ``/proc/<ppid>/environ``; with PR_SET_DUMPABLE=0 only a process with CAP_SYS_PTRACE can
    (ECS/Fargate grant it to no one by default). Per-run uids (:mod:`worker.sandbox`) close it
    entirely. Linux only; a no-op elsewhere.
    """
    make_not_dumpable()


def kill_group(child: subprocess.Popen, *, grace_s: float) -> None:
    """SIGTERM the child's process group, wait ``grace_s``, then SIGKILL whatever is left."""
    pgid = child.pid  # start_new_session: the child leads its own group
    if grace_s > 0:
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace_s)
    _signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Capture:
    """Keep the first and last halves of the cap; count what falls in between."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.dropped = 0

    def drain(self, stream) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = self.head_cap - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail.append(chunk)
                self.tail_len += len(chunk)
                while self.tail_len > self.tail_cap:
                    over = self.tail_len - self.tail_cap
                    first = self.tail[0]
                    if len(first) <= over:
                        self.tail.popleft()
                        self.tail_len -= len(first)
                        self.dropped += len(first)
                    else:
                        self.tail[0] = first[over:]
                        self.tail_len -= over
                        self.dropped += over
        stream.close()

    def text(self) -> str:
        tail = b"".join(self.tail)
        if self.dropped:
            marker = f"\n…[{self.dropped} bytes of output dropped: output cap]…\n".encode()
            return (bytes(self.head) + marker + tail).decode("utf-8", "replace")
        return (bytes(self.head) + tail).decode("utf-8", "replace")


def _node_version(node: str | None) -> tuple[int, ...] | None:
    if not node:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(part) for part in match.groups()) if match else None
