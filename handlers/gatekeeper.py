"""Lambda entry: the gatekeeper (:mod:`gip.services.gatekeeper`), may a received run be queued?

The gatekeeper is built once per container; each SQS record is one idempotent decision.
"""

from __future__ import annotations

from typing import Any

from gip.adapters.github.consumer import run_batch
from gip.services.gatekeeper import Gatekeeper

_gatekeeper: Gatekeeper | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch → partial batch failures; one idempotent decision per record."""
    global _gatekeeper
    if _gatekeeper is None:
        _gatekeeper = Gatekeeper.from_env()
    return run_batch(event, context, _gatekeeper.handle, github=_gatekeeper.github, name="gatekeeper")
