"""SQS queues → their mapped functions, the way Lambda's SQS event source mapping does it.

Like Lambda, a mapping runs several batches at once: ``ScalingConfig.MaximumConcurrency``
pollers when the mapping sets it (the gatekeeper's 5), else Lambda's initial 5; a FIFO queue
(the notifier's, one message group) one batch at a time. A mapping without work for ``idle_s``
polls with its first poller only; the others join in when it gets a batch. The handlers are safe to run
concurrently, as they must be in AWS. Each poller: ``ReceiveMessage`` (long poll, up to the
mapping's batch size) → a real-shaped ``{"Records": [...]}`` event → the handler → ``DeleteMessageBatch`` for the
records that succeeded only. Failed records (``batchItemFailures``, or every record when the
handler raises) stay in the queue: SQS's redrive policy moves them to the DLQ after
``maxReceiveCount`` receives, as in AWS.
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html

Compressed clock: a failed record would come back after the queue's visibility timeout
(minutes); locally its visibility is set to ``retry_s`` (2 s) instead, so a retry is seen at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gip.local import hops
from gip.local.lambdas import Function, Handler
from gip.local.workers import compressed

log = logging.getLogger("local.sqs")

DEFAULT_CONCURRENCY = 5  # Lambda's initial concurrent batches for an SQS mapping


def compress_visibility(sqs: Any, urls: Sequence[str]) -> dict[str, int]:
    """Put each queue's visibility timeout on the compressed clock (900 s → 120 s, like the
    lease), so a message a killed worker held comes back as soon as its lease is swept."""
    done = {}
    for url in urls:
        seconds = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
                      ["Attributes"]["VisibilityTimeout"])
        done[url] = compressed(seconds)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(done[url])})
    return done


def lambda_records(messages: Sequence[Mapping[str, Any]], *, queue_arn: str,
                   region: str) -> list[dict[str, Any]]:
    """Pure: ``ReceiveMessage`` messages → the records Lambda passes to the function."""
    records = []
    for m in messages:
        body = str(m.get("Body", ""))
        records.append({
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": body,
            "attributes": dict(m.get("Attributes") or {}),
            "messageAttributes": {k: {**v, "stringListValues": [], "binaryListValues": []}
                                  for k, v in (m.get("MessageAttributes") or {}).items()},
            "md5OfBody": m.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
        })
    return records


def failed_ids(records: Sequence[Mapping[str, Any]], response: Any) -> set[str]:
    """Pure: the message ids to leave in the queue (all of them if the answer is malformed)."""
    every = {str(r["messageId"]) for r in records}
    if response is None:
        return set()  # a handler that returns nothing succeeded (Lambda's rule)
    if not isinstance(response, Mapping):
        return every
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return every
    ids = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, Mapping)}
    return every if ids - every or "" in ids else ids  # unknown/empty id: the whole batch fails


def queue_url(sqs: Any, queue_arn: str) -> str:
    _, _, _, _, account, name = queue_arn.split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def concurrency_of(maximum: int | None, *, queue_arn: str) -> int:
    """Pure: how many batches a mapping runs at once: ``ScalingConfig.MaximumConcurrency`` when
    set, else Lambda's 5 initial concurrent batches; a FIFO queue with our one message group
    one batch at a time (Lambda scales a FIFO mapping by message group)."""
    if queue_arn.endswith(".fifo"):
        return 1
    return max(1, int(maximum)) if maximum else DEFAULT_CONCURRENCY


def mapping_of(*, function_arn: str, queue_arn: str, region: str) -> Mapping[str, Any] | None:
    """The event source mapping from ``queue_arn`` to the function, read from the Lambda API
    (None when there is none, as when a test plays a bare container)."""
    import boto3

    lam = boto3.client("lambda", region_name=region)  # AWS_ENDPOINT_URL in local mode, like every client
    try:
        for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function_arn):
            for m in page["EventSourceMappings"]:
                if m.get("EventSourceArn") == queue_arn:
                    return dict(m)
    except Exception as exc:  # no Lambda API here: one batch at a time, as before
        log.info("no event source mapping readable for %s: %s", queue_arn, exc)
    return None


class QueuePoller(threading.Thread):
    """Plays one SQS event source mapping until ``stop`` is set: ``concurrency`` pollers, each
    one batch at a time (:func:`concurrency_of` the mapping; None: read the mapping from the
    Lambda API, and run one at a time if there is none, as a bare test container does)."""

    def __init__(self, *, sqs: Any, function: Function, handler: Handler, queue_arn: str,
                 region: str, batch_size: int, stop: threading.Event, wait_s: int = 1,
                 retry_s: int = 2, concurrency: int | None = None, idle_s: float = 5.0) -> None:
        super().__init__(name=f"sqs-{function.name}", daemon=True)
        self.sqs, self.function, self.handler = sqs, function, handler
        self.queue_arn, self.region = queue_arn, region
        self.batch_size = max(1, min(int(batch_size), 10))
        self.stop, self.wait_s, self.retry_s = stop, wait_s, retry_s
        self.concurrency = concurrency
        self.url = ""
        self._lock = threading.Lock()
        self.in_flight: set[str] = set()  # message ids some invocation of this mapping holds now
        self.idle_s = idle_s
        self._busy_at = float("-inf")  # when a poll last handled records
        self._demand = threading.Event()  # set while the mapping has work: every poller polls
        self.overlaps = 0  # messages received while another invocation still held them (dropped)

    def run(self) -> None:
        if self.concurrency is None:  # not given: ask the Lambda API; no mapping there, one at a time
            mapping = mapping_of(function_arn=self.function.arn, queue_arn=self.queue_arn, region=self.region)
            self.concurrency = 1 if mapping is None else concurrency_of(
                (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"), queue_arn=self.queue_arn)
        extra = [threading.Thread(target=self._loop, args=(i,), name=f"{self.name}-{i}", daemon=True)
                 for i in range(1, self.concurrency)]
        for thread in extra:
            thread.start()
        self._loop()
        for thread in extra:
            thread.join(timeout=30)

    def _mark_busy(self) -> None:
        self._busy_at = time.monotonic()
        self._demand.set()

    def _in_demand(self) -> bool:
        return time.monotonic() - self._busy_at < self.idle_s

    def _loop(self, index: int = 0) -> None:
        """One poller. The first always long-polls; the others poll only while the mapping has
        had work in the last ``idle_s`` (Lambda scales its pollers down the same way): an idle
        stack made ~16 empty receives a second, each a request through the embedded endpoint."""
        while not self.stop.is_set():
            if index and not self._in_demand():
                # Asleep until the first poller gets work. The event is cleared here, by a poller
                # that finds no demand (left set, the wait returned at once: a busy loop), and
                # demand is checked again after the clear, so a wake-up between the two is kept.
                self._demand.clear()
                if not self._in_demand():
                    self._demand.wait(timeout=1.0)
                continue
            try:
                if not self.url:
                    self.url = queue_url(self.sqs, self.queue_arn)
                if self.poll_once():
                    self._mark_busy()  # again at the end: a long invocation keeps the others awake
            except Exception as exc:
                if self.stop.is_set():
                    return
                log.warning("%s poller: %s: %s", self.function.name, type(exc).__name__, exc)
                self.stop.wait(1.0)

    def _claim(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep the messages no other invocation holds, and mark them held. A message can come
        back while held only if its visibility ran out; the holder's answer decides it."""
        with self._lock:
            mine = [m for m in messages if m["MessageId"] not in self.in_flight]
            self.overlaps += len(messages) - len(mine)
            self.in_flight.update(m["MessageId"] for m in mine)
        return mine

    def poll_once(self) -> int:
        """One receive → one invocation → deletes; returns how many records were handled."""
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        messages = self._claim(messages)
        if not messages:
            return 0
        self._mark_busy()  # the other pollers join in while this one works
        try:
            return self._invoke(messages)
        finally:
            with self._lock:
                self.in_flight.difference_update(m["MessageId"] for m in messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> int:
        received = time.time()
        records = lambda_records(messages, queue_arn=self.queue_arn, region=self.region)
        try:
            response = self.handler({"Records": records}, self.function.context())
        except Exception as exc:
            log.warning("%s failed on a batch of %d message(s): %s: %s", self.function.name,
                        len(records), type(exc).__name__, exc)
            response = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
        failed = failed_ids(records, response)
        if hops.enabled():
            end = time.time()
            for r in records:
                envelope = hops.envelope_of(r["body"])
                hops.note("sqs", fn=self.function.name, stream=envelope.get("stream"), type=envelope.get("type"),
                          sent=int(r["attributes"].get("SentTimestamp", 0)) / 1000, received=received,
                          batch=len(records), end=end, failed=r["messageId"] in failed)
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)])
        retry = [r for r in records if r["messageId"] in failed]
        if retry:
            self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": self.retry_s}
                for i, r in enumerate(retry)])
        return len(records)
