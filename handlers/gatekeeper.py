"""Lambda entry: the gatekeeper (:mod:`gip.services.gatekeeper`), may a received run be queued?

The gatekeeper is built once per container; each SQS record is one idempotent decision.
"""

from __future__ import annotations

from typing import Any

from gip import observability
from gip.adapters.github.consumer import run_batch
from gip.adapters.sqs_batch import BatchResponse
from gip.container import once
from gip.services.gatekeeper import Gatekeeper


@once  # once per container
def _service() -> Gatekeeper:
    return Gatekeeper.from_env()


@observability.entry("gatekeeper")
def handler(event: dict[str, Any], context: Any) -> BatchResponse:
    """SQS batch → partial batch failures; one idempotent decision per record."""
    gatekeeper = _service()
    return run_batch(event, context, observability.per_event(gatekeeper.handle),
                     github=gatekeeper.github, name="gatekeeper")
