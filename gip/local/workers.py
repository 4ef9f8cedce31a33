"""Playing ECS: N ``python -m worker`` processes with the task definition's environment.

The environment is the worker container's, read from the deployed task definition, plus
only what a task would get from ECS: the management account's credentials (the task role),
the region and the endpoint. Nothing else of ours is inherited: in particular never the
GitHub token or the webhook secret (the worker must not hold them; DESIGN.md step 4).

Each worker's output goes to ``<log_dir>/<name>.log``; its JSON log lines also to
``<json_dir>/<name>.jsonl`` and its EMF metric lines to ``<log_dir>/metrics.log`` (as the
in-process functions'); its warnings and errors are echoed as one readable line each.
On stop every worker gets SIGTERM (it gives its run back cleanly), then SIGKILL after the
ECS stop timeout. On Linux the workers also get SIGTERM if this process dies (PR_SET_PDEATHSIG),
so even a killed supervisor leaves no orphans behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 30.0  # ECS's default stopTimeout
# What ECS does not pass to a task, or the bundle loader only needs in AWS.
DROPPED = ("BUNDLE_BUCKET", "BUNDLE_KEY")
PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
# The compressed clock: AWS's 900 s lease is 120 s here, and every other period the local stack
# plays (queue visibility timeouts, the worker's visibility heartbeat) shrinks by the same factor.
CLOCK = 900 / 120


def compressed(seconds: float, *, floor: int = 5) -> int:
    """Pure: ``seconds`` of AWS time on the local clock (at least ``floor``)."""
    return max(floor, round(seconds / CLOCK))


LOCAL = {
    "WORKER_POLL_SECONDS": "1",  # long-poll wait: short, so SIGTERM is seen quickly
    "LEASE_SECONDS": "120",  # compressed clock: a dead worker's lease is swept within ~2 min
    "VISIBILITY_SECONDS": str(compressed(300)),  # a killed worker's message is back in ~40 s, not 300 s
    "PYTHONUNBUFFERED": "1",
}
RESTART_BACKOFF_S = (1.0, 60.0)  # ECS-like: a worker that keeps dying is restarted less often


def worker_environment(task_env: Mapping[str, str], *, name: str, endpoint: str, region: str,
                       credentials: Mapping[str, str], parent: Mapping[str, str]) -> dict[str, str]:
    """Pure: the environment of one worker process."""
    env = {k: v for k, v in task_env.items() if k not in DROPPED and not k.startswith("GITHUB_")}
    env.update({k: parent[k] for k in PASSED if k in parent})
    env.update(LOCAL)
    env.update({
        "WORKER_NAME": name, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region, "PYTHONPATH": str(ROOT),
    })
    env.update({k: v for k, v in credentials.items()
                if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") and v})
    return env


def classify_line(line: str) -> tuple[str, dict[str, Any] | None]:
    """Pure: ``("metric", doc)`` for an EMF line, ``("log", doc)`` for a JSON log line,
    ``("text", None)`` for anything else (a start-up error, a traceback)."""
    if line.startswith("{"):
        try:
            doc = json.loads(line)
        except ValueError:
            return "text", None
        if isinstance(doc, dict):
            return ("metric" if "_aws" in doc else "log" if "level" in doc else "text"), doc
    return "text", None


def echo_line(name: str, line: str) -> str | None:
    """Pure: the terminal line for a worker's output line (warnings and errors only)."""
    kind, doc = classify_line(line)
    if kind == "log" and doc is not None:
        if doc.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            return f"[{name}] {doc.get('level')} {doc.get('name', '')}: {doc.get('message', '')}"
        return None
    if kind == "text" and (" WARNING " in line or " ERROR " in line or line.startswith("error:")):
        return f"[{name}] {line}"
    return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Workers:
    """Start, watch and stop the worker processes."""

    def __init__(self, *, count: int, env_for: Callable[[str], dict[str, str]], log_dir: Path,
                 echo: Callable[[str], None], json_dir: Path | None = None,
                 command: tuple[str, ...] = (sys.executable, "-m", "worker")) -> None:
        self.count, self.env_for, self.log_dir, self.echo = count, env_for, log_dir, echo
        self.command = command
        self.json_dir = json_dir or log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._readers: list[threading.Thread] = []
        self.restarts: dict[str, int] = {}  # name → times replaced
        self._due: dict[str, float] = {}  # name → when a dead worker may be replaced
        self.stopping = False

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, self.count + 1):
            self._spawn(f"local-worker-{n}")

    def _spawn(self, name: str) -> None:
        proc = subprocess.Popen(
            list(self.command), cwd=ROOT, env=self.env_for(name),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.procs[name] = proc
        reader = threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True,
                                  name=f"{name}-output")
        reader.start()
        self._readers.append(reader)

    def replace_dead(self, now: float) -> list[str]:
        """As ECS keeps a service at its desired count: start a new process for each worker
        that ended by itself (after a backoff that doubles each time the same one dies, from
        1 s to 60 s). Returns one notice per worker replaced or waiting to be."""
        notices = []
        for name, code in self.exited().items():
            if self.stopping:
                break
            due = self._due.setdefault(name, now + min(RESTART_BACKOFF_S[0] * 2 ** self.restarts.get(name, 0),
                                                      RESTART_BACKOFF_S[1]))
            if now < due:
                continue
            del self._due[name]
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self._spawn(name)
            notices.append(f"{name} exited with code {code}; replaced with a new process, as ECS would "
                           f"(restart {self.restarts[name]}; its log: {self.log_dir / (name + '.log')})")
        return notices

    def _pump(self, name: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        self.json_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log, \
                open(self.json_dir / f"{name}.jsonl", "a", encoding="utf-8") as jsonl:
            for raw in stream:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip()
                kind, _ = classify_line(line)
                if kind == "log":
                    jsonl.write(line + "\n")
                    jsonl.flush()
                elif kind == "metric":
                    with open(self.log_dir / "metrics.log", "a", encoding="utf-8") as metrics:
                        metrics.write(line + "\n")
                shown = echo_line(name, line)
                if shown is not None:
                    self.echo(shown)

    def alive(self) -> int:
        return sum(1 for p in self.procs.values() if p.poll() is None)

    def exited(self) -> dict[str, int]:
        """Workers that ended by themselves (name → exit code)."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=2)


def parent_credentials(env: Mapping[str, str] | None = None) -> dict[str, str]:
    e = os.environ if env is None else env
    return {k: e[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if e.get(k)}
