"""The SQS batch of the two GitHub-holding consumers (gatekeeper, notifier).

One idempotent call per record (:func:`gip.adapters.sqs_batch.process_sqs_batch`); a failed
record is reported in ``batchItemFailures`` so SQS brings back just that one. The Lambda's
remaining time bounds GitHub retries: records that cannot start in time are handed back
untouched rather than timing out the whole batch.

A rate limit stops the batch (docs/internals.md, "GitHub rate limits"): the limited record and
every record not yet handled are handed back untouched, with their visibility set to the wait
(``ChangeMessageVisibility``). So that a limit never brings a record nearer to the DLQ, one
already received :data:`REQUEUE_AT` times or more is sent again as a fresh message (delayed by
the wait, up to SQS's 15 min, on a standard queue) and the original is reported done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gip.adapters.github import errors as gh_errors
from gip.adapters.github.client import GitHubClient
from gip.adapters.sqs_batch import BatchResponse, process_sqs_batch
from gip.domain.envelope import Envelope, envelope_from_sqs_body
from gip.errors import GipError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

log = logging.getLogger(__name__)
MARGIN_S = 5.0  # kept free at the end of an invocation for the answer to reach Lambda
REQUEUE_AT = 2  # a rate-limited record received this often is re-sent fresh (receive count 1)
MAX_VISIBILITY_S = 43_200  # SQS's limit
MAX_DELAY_S = 900  # SQS's limit for DelaySeconds


def envelope_from_record(record: Mapping[str, Any]) -> Envelope:
    """The envelope in an SQS record (:func:`gip.domain.envelope.envelope_from_sqs_body`)."""
    return envelope_from_sqs_body(record["body"])


def remaining_s(context: Any) -> float | None:
    """Seconds left in this invocation, if the context knows (local runs pass None)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000.0 if callable(getter) else None


def run_batch(event: Mapping[str, Any], context: Any, handle: Callable[[Envelope], object], *,
              github: GitHubClient | None, name: str,
              clock: Callable[[], float] = time.monotonic,
              sqs: Callable[[], Any] | None = None) -> BatchResponse:
    """Call ``handle`` once per record; return the partial batch response."""
    left = remaining_s(context)
    deadline = None if left is None else clock() + left - MARGIN_S
    if github is not None:
        github.set_deadline(None if left is None else left - MARGIN_S)
    limit: list[float] = []  # the wait, once a rate limit stopped the batch
    held: set[str] = set()  # message ids handed back because of it

    def record_handler(record: SQSRecord) -> None:
        if limit:
            held.add(record.message_id)
            raise Deferred(record.message_id)  # reported failed: comes back intact
        if deadline is not None and clock() >= deadline:
            raise NotStarted(record.message_id)  # reported failed: comes back intact
        try:
            handle(envelope_from_sqs_body(record.body))
        except gh_errors.RateLimited as exc:
            log.warning("%s: GitHub rate limit, %.0fs to wait: the batch stops at record %s",
                        name, exc.retry_after, record.message_id)
            limit.append(exc.retry_after)
            held.add(record.message_id)
            raise
        except Exception as exc:  # reported failed alone; its batch-mates go on
            log.error("%s: record %s failed: %s", name, record.message_id, exc,
                      exc_info=not isinstance(exc, GipError))
            raise

    response = process_sqs_batch(event, record_handler)
    if limit:
        done = hand_back([r for r in event.get("Records", []) if r.get("messageId") in held],
                         wait_s=limit[0], sqs=sqs or _sqs_client, name=name)
        response = {"batchItemFailures": [f for f in response["batchItemFailures"]
                                          if f["itemIdentifier"] not in done]}
    return response


def hand_back(records: list[Mapping[str, Any]], *, wait_s: float, sqs: Callable[[], Any],
              name: str) -> set[str]:
    """Make ``records`` come back after ``wait_s``; returns the ids re-sent fresh (to report
    done). SQS errors are logged: such a record comes back at the queue's visibility timeout."""
    resent: set[str] = set()
    clients: list[Any] = []
    for record in records:
        mid = str(record.get("messageId"))
        attrs = record.get("attributes") or {}
        try:
            if not clients:
                clients.append(sqs())
            client = clients[0]
            url = queue_url_of(str(record.get("eventSourceARN", "")))
            if int(attrs.get("ApproximateReceiveCount") or 1) >= REQUEUE_AT:
                client.send_message(**requeue_args(url, record, wait_s))
                resent.add(mid)
            else:
                client.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=int(min(MAX_VISIBILITY_S, max(1.0, wait_s + 1))))
        except Exception as exc:  # the boundary: SQS refused; the record still comes back
            log.warning("%s: could not hand record %s back for %.0fs: %s", name, mid, wait_s, exc)
    return resent


def requeue_args(url: str, record: Mapping[str, Any], wait_s: float) -> dict[str, Any]:
    """Pure: ``SendMessage`` arguments for a fresh copy of ``record``."""
    attrs = record.get("attributes") or {}
    args: dict[str, Any] = {"QueueUrl": url, "MessageBody": record["body"]}
    if url.endswith(".fifo"):  # no per-message delay on FIFO; the gate holds the copy back
        count = attrs.get("ApproximateReceiveCount") or "1"
        args["MessageGroupId"] = attrs.get("MessageGroupId") or "default"
        args["MessageDeduplicationId"] = f"{record['messageId']}-rl{count}"[:128]
    else:
        args["DelaySeconds"] = int(min(MAX_DELAY_S, max(0.0, wait_s)))
    return args


def queue_url_of(arn: str) -> str:
    """Pure: the queue URL of an SQS ARN (no GetQueueUrl call; moto takes the same form)."""
    _, partition, _, region, account, queue = arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{queue}"


def _sqs_client() -> Any:
    import boto3

    return boto3.client("sqs")


def client_for(settings: Any) -> GitHubClient | None:
    """The consumers' GitHub client (None without a token: local print mode), with the
    deployment-wide rate gate in the pool table."""
    from gip.adapters.github.token import client_from_settings
    from gip.store.dynamo_ops import DynamoRateGate

    client: GitHubClient | None = client_from_settings(settings)
    if client is not None:
        client.gate = DynamoRateGate.from_settings(settings)
    return client


class Deferred(Exception):
    """A record left untouched because a rate limit stopped the batch."""


class NotStarted(Exception):
    """A record left untouched because the invocation's time is nearly up."""
