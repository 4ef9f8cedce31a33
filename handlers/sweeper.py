"""Lambda entry: the sweeper (:func:`gip.services.sweeper.sweep`), stale leases timed out.
Its pool and issues are built once per container.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gip import observability
from gip.container import once
from gip.domain.envelope import utcnow
from gip.services.issues import Issues
from gip.services.pool import Pool
from gip.services.sweeper import sweep

log = logging.getLogger(__name__)


@once  # once per container
def _service() -> tuple[Pool, Issues, int, int]:
    """The pool, the issues, the lease hard cap (s) and the attempts before giving up."""
    from gip.config import Settings, env_number
    from gip.store.models import Tables

    settings = Settings.from_env()
    tables = Tables.from_settings(settings)
    return (Pool.from_settings(settings, tables), Issues.from_settings(settings, tables),
            settings.lease_hard_cap_seconds, env_number(os.environ, "MAX_ATTEMPTS", 3, minimum=1))


@observability.entry("sweeper")
def handler(event: dict[str, Any], context: Any, *, clock: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """Schedule or SQS entry point: the event's content does not matter, every call sweeps."""
    pool, issues, hard_cap, max_attempts = _service()
    done = sweep(pool, issues, now=clock(), hard_cap_seconds=hard_cap, max_attempts=max_attempts)
    log.info("sweep: %d timed out, %d left alone", len(done["timed_out"]), len(done["skipped"]))
    return {**done, "batchItemFailures": []}
