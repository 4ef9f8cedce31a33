"""Lambda entry: the notifier (:mod:`gip.services.notifier`), one status comment per issue.

The notifier is built once per container; each SQS record is one idempotent update.
"""

from __future__ import annotations

from typing import Any

from gip import observability
from gip.adapters.github.consumer import run_batch
from gip.adapters.sqs_batch import BatchResponse
from gip.container import once
from gip.services.notifier import Notifier


@once  # once per container
def _service() -> Notifier:
    return Notifier.from_env()


@observability.entry("notifier")
def handler(event: dict[str, Any], context: Any) -> BatchResponse:
    """SQS batch → partial batch failures; one idempotent update per record."""
    notifier = _service()
    with notifier.batch():
        return run_batch(event, context, observability.per_event(notifier.handle),
                         github=notifier.github, name="notifier")
