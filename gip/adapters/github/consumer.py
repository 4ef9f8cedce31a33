"""The SQS batch of the two GitHub-holding consumers (gatekeeper, notifier).

One idempotent call per record (:func:`gip.adapters.sqs_batch.process_sqs_batch`); a failed
record is reported in ``batchItemFailures`` so SQS brings back just that one. The Lambda's
remaining time bounds GitHub retries: records that cannot start in time are handed back
untouched rather than timing out the whole batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gip.adapters.github.client import GitHubClient
from gip.adapters.sqs_batch import BatchResponse, process_sqs_batch
from gip.domain.envelope import Envelope, envelope_from_sqs_body
from gip.errors import GipError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

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
              clock: Callable[[], float] = time.monotonic) -> BatchResponse:
    """Call ``handle`` once per record; return the partial batch response."""
    left = remaining_s(context)
    deadline = None if left is None else clock() + left - MARGIN_S
    if github is not None:
        github.set_deadline(None if left is None else left - MARGIN_S)

    def record_handler(record: SQSRecord) -> None:
        if deadline is not None and clock() >= deadline:
            raise NotStarted(record.message_id)  # reported failed: comes back intact
        try:
            handle(envelope_from_sqs_body(record.body))
        except Exception as exc:  # reported failed alone; its batch-mates go on
            log.error("%s: record %s failed: %s", name, record.message_id, exc,
                      exc_info=not isinstance(exc, GipError))
            raise

    return process_sqs_batch(event, record_handler)


class NotStarted(Exception):
    """A record left untouched because the invocation's time is nearly up."""
