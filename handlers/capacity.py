"""Lambda entry: capacity (:mod:`gip.services.capacity`), the worker service's desired count
follows the usable accounts. Built once per container; one sync per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gip import observability
from gip.container import once
from gip.services.capacity import Capacity

log = logging.getLogger(__name__)


@once  # once per container
def _service() -> Capacity:
    return Capacity.from_env()


@observability.entry("capacity")
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch (pool-changing events) or a schedule: one sync covers every record.

    Each record only says "the count may have changed", so the batch needs one sync. If it
    fails, every record is reported failed and SQS retries the batch.
    """
    capacity = _service()
    records = event.get("Records", []) if isinstance(event, Mapping) else []
    try:
        capacity.sync()
    except Exception:
        if not records:
            raise
        log.exception("capacity sync failed; the batch will be retried")
        # Not Powertools' BatchProcessor: one sync answers for the whole batch, all or nothing.
        return {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in records]}
    return {"batchItemFailures": []}


handler = lambda_handler  # the name the templates use
