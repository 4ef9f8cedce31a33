"""SQS queues → their mapped functions, the way Lambda's SQS event source mapping does it.

One poller thread per mapping (so a function runs one batch at a time: the notifier's
concurrency of 1 holds). ``ReceiveMessage`` (long poll, up to the mapping's batch size) →
a real-shaped ``{"Records": [...]}`` event → the handler → ``DeleteMessageBatch`` for the
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
from collections.abc import Mapping, Sequence
from typing import Any

from gip.local.lambdas import Function, Handler
from gip.local.workers import compressed

log = logging.getLogger("local.sqs")


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


class QueuePoller(threading.Thread):
    """Plays one SQS event source mapping until ``stop`` is set."""

    def __init__(self, *, sqs: Any, function: Function, handler: Handler, queue_arn: str,
                 region: str, batch_size: int, stop: threading.Event, wait_s: int = 1,
                 retry_s: int = 2) -> None:
        super().__init__(name=f"sqs-{function.name}", daemon=True)
        self.sqs, self.function, self.handler = sqs, function, handler
        self.queue_arn, self.region = queue_arn, region
        self.batch_size = max(1, min(int(batch_size), 10))
        self.stop, self.wait_s, self.retry_s = stop, wait_s, retry_s
        self.url = ""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.url:
                    self.url = queue_url(self.sqs, self.queue_arn)
                self.poll_once()
            except Exception as exc:
                if self.stop.is_set():
                    return
                log.warning("%s poller: %s: %s", self.function.name, type(exc).__name__, exc)
                self.stop.wait(1.0)

    def poll_once(self) -> int:
        """One receive → one invocation → deletes; returns how many records were handled."""
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = lambda_records(messages, queue_arn=self.queue_arn, region=self.region)
        try:
            response = self.handler({"Records": records}, self.function.context())
        except Exception as exc:
            log.warning("%s failed on a batch of %d message(s): %s: %s", self.function.name,
                        len(records), type(exc).__name__, exc)
            response = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
        failed = failed_ids(records, response)
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
