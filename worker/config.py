"""The worker's settings: the shared :class:`Settings` plus a few worker-only variables.

| variable | default | meaning |
|---|---|---|
| ``WORKER_NAME`` | ``<hostname>-<pid>`` | recorded in leases and events |
| ``RUN_TIMEOUT_SECONDS`` | ``900`` | wall-clock limit of one processor run |
| ``OUTPUT_CAP_BYTES`` | ``1000000`` | output kept per run (head + tail) |
| ``POOL_WAIT_SECONDS`` | ``3600`` | an empty pool for longer → IssueProcessingFailed (retryable) |
| ``WORKER_POLL_SECONDS`` | ``10`` | SQS long-poll wait (short enough to see SIGTERM) |
| ``VISIBILITY_SECONDS`` | ``300`` | what each heartbeat extends the message's visibility to |
| ``HEARTBEAT_SECONDS`` | lease/3, ≤ visibility/3 | heartbeat period |
| ``BACKOFF_BASE_SECONDS`` / ``BACKOFF_CAP_SECONDS`` | ``15`` / ``900`` | empty-pool backoff |
| ``MAX_ATTEMPTS`` | ``3`` | processing attempts per run; cleanup attempts before quarantine |
| ``RUN_UID_RANGE`` | ``200000-200999`` | when the worker is root: each run gets its own uid/gid from this range |
| ``RUN_AS_USER`` | (ignored) | obsolete: one shared user let runs read each other; per-run uids replace it |
| ``STOP_BUDGET_SECONDS`` | ``25`` | time allowed for cleanup after SIGTERM (ECS stop timeout 30 s) |
| ``PROCESSOR`` / ``CLEANER`` | built-in | ``module:function`` plug-ins; ``CLEANER``: also ``builtin`` / ``aws-nuke`` |
| ``ALLOWED_REGIONS`` | the worker's region | regions the cleaner sweeps (comma-separated) |
| ``NUKE`` | ``aws-nuke`` on PATH, else the bundle's ``bin/aws-nuke`` | the aws-nuke binary, or ``off`` (then the built-in cleaner) |
| ``CLEANUP_CLAIM_SECONDS`` | ``300`` | a cleaner's claim on an account: renewed while it works, lapses if it crashed |
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from gip.config import Settings, env_number
from gip.errors import ConfigError
from worker.runner import Limits
from worker.sandbox import Isolation

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def _regions(spec: str, home: str) -> tuple[str, ...]:
    """The home region first (global services are called there), then the others."""
    names = [r.strip() for r in spec.split(",") if r.strip()]
    bad = [r for r in names if not _REGION.match(r)]
    if bad:
        raise ConfigError(f"ALLOWED_REGIONS has {bad[0]!r}, which is not a region name like us-east-1")
    return tuple(dict.fromkeys([home, *names])) if names else (home,)


@dataclass(frozen=True)
class WorkerConfig:
    settings: Settings
    name: str
    limits: Limits = field(default_factory=Limits)
    pool_wait_s: float = 3600
    poll_wait_s: int = 10
    visibility_s: int = 300
    heartbeat_s: float = 300
    backoff_base_s: float = 15
    backoff_cap_s: float = 900
    max_attempts: int = 3
    stop_budget_s: float = 25
    processor: str = ""
    cleaner: str = ""
    allowed_regions: tuple[str, ...] = ()
    nuke: str = ""
    cleanup_claim_s: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, settings: Settings | None = None) -> WorkerConfig:
        e = os.environ if env is None else env
        settings = settings or Settings.from_env(e)
        visibility = env_number(e, "VISIBILITY_SECONDS", 300, minimum=1)
        default_heartbeat = min(settings.lease_seconds / 3, visibility / 3)
        return cls(
            settings=settings,
            name=e.get("WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            limits=Limits(timeout_s=env_number(e, "RUN_TIMEOUT_SECONDS", 900.0, minimum=1),
                          output_cap=env_number(e, "OUTPUT_CAP_BYTES", 1_000_000, minimum=1),
                          isolation=Isolation.detect(e.get("RUN_UID_RANGE", ""))),
            pool_wait_s=env_number(e, "POOL_WAIT_SECONDS", 3600.0),
            poll_wait_s=env_number(e, "WORKER_POLL_SECONDS", 10),
            visibility_s=visibility,
            heartbeat_s=env_number(e, "HEARTBEAT_SECONDS", float(default_heartbeat), minimum=1),
            backoff_base_s=env_number(e, "BACKOFF_BASE_SECONDS", 15.0),
            backoff_cap_s=env_number(e, "BACKOFF_CAP_SECONDS", 900.0),
            max_attempts=env_number(e, "MAX_ATTEMPTS", 3, minimum=1),
            stop_budget_s=env_number(e, "STOP_BUDGET_SECONDS", 25.0),
            processor=e.get("PROCESSOR", ""),
            cleaner=e.get("CLEANER", ""),
            allowed_regions=_regions(e.get("ALLOWED_REGIONS", ""), settings.region),
            nuke=e.get("NUKE", ""),
            cleanup_claim_s=env_number(e, "CLEANUP_CLAIM_SECONDS", 300, minimum=1),
        )
