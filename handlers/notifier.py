"""Lambda entry: the notifier (:mod:`gip.services.notifier`), one status comment per issue.

The notifier is built once per container; each SQS record is one idempotent update.
"""

from __future__ import annotations

from typing import Any

from gip.adapters.github.consumer import run_batch
from gip.services.notifier import Notifier

_notifier: Notifier | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch → partial batch failures; one idempotent update per record."""
    global _notifier
    if _notifier is None:
        _notifier = Notifier.from_env()
    with _notifier.batch():
        return run_batch(event, context, _notifier.handle, github=_notifier.github, name="notifier")
