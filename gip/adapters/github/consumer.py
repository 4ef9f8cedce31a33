"""The SQS batch loop shared by the two GitHub-holding consumers (gatekeeper, notifier).

One idempotent call per record; a failed record is reported in ``batchItemFailures`` so SQS
brings back just that one. The Lambda's remaining time bounds GitHub retries: records that
cannot start in time are handed back untouched rather than timing out the whole batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gip.adapters.github.client import GitHubClient
from gip.domain.envelope import Envelope, envelope_from_sqs_body
from gip.errors import GipError

log = logging.getLogger(__name__)
MARGIN_S = 5.0  # kept free at the end of an invocation for the answer to reach Lambda


def envelope_from_record(record: Mapping[str, Any]) -> Envelope:
    """The envelope in an SQS record (:func:`gip.domain.envelope.envelope_from_sqs_body`)."""
    return envelope_from_sqs_body(record["body"])


def remaining_s(context: Any) -> float | None:
    """Seconds left in this invocation, if the context knows (local runs pass None)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000.0 if callable(getter) else None


def run_batch(event: Mapping[str, Any], context: Any, handle: Callable[[Envelope], object], *,
              github: GitHubClient | None, name: str,
              clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Call ``handle`` once per record; return the partial batch response."""
    left = remaining_s(context)
    deadline = None if left is None else clock() + left - MARGIN_S
    if github is not None:
        github.set_deadline(None if left is None else left - MARGIN_S)
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        if deadline is not None and clock() >= deadline:
            failures.append({"itemIdentifier": message_id})  # not started: comes back intact
            continue
        try:
            handle(envelope_from_record(record))
        except Exception as exc:  # one bad record must not fail the batch
            log.error("%s: record %s failed: %s", name, message_id, exc,
                      exc_info=not isinstance(exc, GipError))
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
