"""The events table's stream → the publisher, the way a Lambda event source mapping does it.

Poll each shard with the ``dynamodbstreams`` API (``GetShardIterator`` TRIM_HORIZON, then
``GetRecords`` up to the mapping's batch size), hand the batch to the mapped function as a
real-shaped ``{"Records": [...]}`` event, and honour ReportBatchItemFailures: the shard
resumes at the lowest failed sequence number (``AT_SEQUENCE_NUMBER``), so that record and
every later one come back, as Lambda does for an ordered stream. A raised error retries the
whole batch. https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html

Every stored event the publisher got through is also shown by the printer.

Like the template's mapping (``BisectBatchOnFunctionError``), a failing batch is split: the
next read from the failed record takes half as many records, down to that one record alone,
so an innocent record that shared a batch with a bad one goes through. The record alone is
retried ``MaximumRetryAttempts`` times (from the mapping), then *parked*: an invocation record in Lambda's on-failure shape (``requestContext``
with ``condition: RetryAttemptsExhausted`` and ``DDBStreamBatchInfo`` naming the shard and
sequence numbers) is sent to the mapping's ``OnFailure`` destination (the publisher's DLQ), and
the shard moves past it, so one bad record never holds up the rest. ``lag_s`` (the age of the
oldest record not yet delivered), ``parked`` and ``last_error`` feed ``/healthz``.
https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html#services-dynamodb-errors

Each poll asks for a fresh iterator after the last sequence number delivered
(``AFTER_SEQUENCE_NUMBER``) instead of following ``NextShardIterator``: moto restores a table
from a deep copy when a TransactWriteItems is cancelled (any condition failure, e.g. a
duplicate delivery), and an old iterator keeps reading the discarded copy of the shard, so
the stream would look silent from then on. A fresh iterator is looked up through the table.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gip.local import hops
from gip.local.lambdas import Function, Handler

log = logging.getLogger("local.streams")


def lambda_record(raw: Mapping[str, Any], *, source_arn: str, region: str) -> dict[str, Any]:
    """Pure: a ``GetRecords`` record → the record Lambda passes (epoch seconds, source ARN)."""
    dynamodb = dict(raw.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": raw.get("eventID"), "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion") or region, "dynamodb": dynamodb,
        "eventSourceARN": source_arn,
    }


def first_failure(records: Sequence[Mapping[str, Any]], response: Any) -> int | None:
    """Pure: index of the first record to retry, from a partial batch response (None: all done)."""
    failures = (response or {}).get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return None
    failed = {str(f.get("itemIdentifier")) for f in failures}
    for index, record in enumerate(records):
        if str(record["dynamodb"].get("SequenceNumber")) in failed:
            return index
    return 0  # an identifier we did not send: be safe, retry the batch


def stored_event(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Pure: the envelope an INSERT record carries (``body``), or None (markers, updates)."""
    if record.get("eventName") != "INSERT":
        return None
    body = (record["dynamodb"].get("NewImage") or {}).get("body", {}).get("S")
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def failure_record(record: Mapping[str, Any], *, shard_id: str, function_arn: str, stream_arn: str,
                   attempts: int, error: str) -> dict[str, Any]:
    """Pure: the invocation record Lambda sends to a stream mapping's on-failure destination."""
    sequence = str(record["dynamodb"].get("SequenceNumber"))
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    arrival = datetime.fromtimestamp(float(created), UTC).isoformat() if isinstance(created, int | float) else None
    return {
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": function_arn,
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": error},
        "version": "1.0", "timestamp": datetime.now(UTC).isoformat(),
        "DDBStreamBatchInfo": {"shardId": shard_id, "startSequenceNumber": sequence, "endSequenceNumber": sequence,
                               "approximateArrivalOfFirstRecord": arrival, "approximateArrivalOfLastRecord": arrival,
                               "batchSize": 1, "streamArn": stream_arn},
    }


def sqs_parker(sqs: Any, destination_arn: str) -> Callable[[dict[str, Any]], None] | None:
    """Send a parked record's invocation record to an SQS on-failure destination (None: none)."""
    if not destination_arn:
        return None
    from gip.local.sqs_mappings import queue_url

    return lambda doc: sqs.send_message(QueueUrl=queue_url(sqs, destination_arn), MessageBody=json.dumps(doc))


class StreamPoller(threading.Thread):
    """One thread per stream mapping; stops when ``stop`` is set."""

    def __init__(self, *, client: Any, function: Function, handler: Handler, stream_arn: str,
                 region: str, batch_size: int, stop: threading.Event,
                 on_event: Callable[[dict[str, Any]], None], idle_s: float = 0.3,
                 retry_s: float = 1.0, max_retries: int = -1,
                 park: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(name="stream-poller", daemon=True)
        self.client, self.function, self.handler = client, function, handler
        self.stream_arn, self.region, self.batch_size = stream_arn, region, min(batch_size, 1000)
        self.stop, self.on_event, self.idle_s, self.retry_s = stop, on_event, idle_s, retry_s
        self.max_retries, self.park = max_retries, park
        self.positions: dict[str, tuple[str, str | None]] = {}  # shard → (iterator type, sequence)
        self.attempts: dict[str, tuple[str, int]] = {}  # shard → (failing sequence, failures so far)
        self.limits: dict[str, int] = {}  # shard → a bisected batch size while a record fails
        self.pending_since: dict[str, float] = {}  # shard → creation time of its oldest undelivered record
        self.parked = 0
        self.last_error = ""

    @property
    def lag_s(self) -> float:
        """Age of the oldest record read but not yet delivered (0 when caught up)."""
        oldest = min(self.pending_since.values(), default=None)
        return 0.0 if oldest is None else max(time.time() - oldest, 0.0)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.poll_once()
            except Exception as exc:  # the endpoint going away at shutdown, a moto hiccup
                if self.stop.is_set():
                    return
                log.warning("stream poller: %s: %s", type(exc).__name__, exc)
                busy = False
                self.positions.clear()
            if not busy:
                self.stop.wait(self.idle_s)

    def skip_to_end(self) -> int:
        """Start after every record already in the stream (the restored log: on the bus
        before the stop, never published twice). Returns how many records were skipped."""
        skipped = 0
        shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            kind, sequence = "TRIM_HORIZON", None
            while True:
                page = self.client.get_records(ShardIterator=self._iterator(shard["ShardId"], kind, sequence),
                                               Limit=1000)
                records = page.get("Records", [])
                if not records:
                    break
                skipped += len(records)
                kind, sequence = "AFTER_SEQUENCE_NUMBER", str(records[-1]["dynamodb"]["SequenceNumber"])
            self.positions[shard["ShardId"]] = (kind, sequence)
        return skipped

    def poll_once(self) -> bool:
        """Read and deliver one batch per shard; True if anything was delivered."""
        if not self.positions:
            shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            for shard in shards:
                self.positions[shard["ShardId"]] = ("TRIM_HORIZON", None)
        busy = False
        for shard_id, (kind, sequence) in list(self.positions.items()):
            iterator = self._iterator(shard_id, kind, sequence)
            page = self.client.get_records(ShardIterator=iterator, Limit=self.limits.get(shard_id, self.batch_size))
            records = [lambda_record(r, source_arn=self.stream_arn, region=self.region)
                       for r in page.get("Records", [])]
            if not records:
                continue
            busy = True
            created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
            self.pending_since.setdefault(shard_id, float(created) if isinstance(created, int | float) else time.time())
            read_at = time.time()
            retry_at = self._deliver(records)
            done = records if retry_at is None else records[:retry_at]
            for record in done:
                event = stored_event(record)
                if event is not None:
                    self.on_event(event)
                    hops.note("stream", stream=event.get("stream"), type=event.get("type"),
                              read=read_at, batch=len(records), end=time.time())
            if retry_at is None:
                last = str(records[-1]["dynamodb"]["SequenceNumber"])
                self.positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
                self.pending_since.pop(shard_id, None)
                self.attempts.pop(shard_id, None)
                self.limits.pop(shard_id, None)
            elif len(records) - retry_at > 1:  # bisect: retry from the failed record with half as many
                self.limits[shard_id] = (len(records) - retry_at) // 2
                self.positions[shard_id] = ("AT_SEQUENCE_NUMBER", str(records[retry_at]["dynamodb"]["SequenceNumber"]))
                self.stop.wait(self.retry_s)
            else:
                self._retry_or_park(shard_id, records[retry_at])
        return busy

    def _retry_or_park(self, shard_id: str, record: dict[str, Any]) -> None:
        """Retry from ``record``, or, once it has failed 1 + ``max_retries`` times, park it."""
        sequence = str(record["dynamodb"]["SequenceNumber"])
        seen, failures = self.attempts.get(shard_id, (sequence, 0))
        failures = failures + 1 if seen == sequence else 1
        if self.max_retries < 0 or failures <= self.max_retries or self.park is None:
            self.attempts[shard_id] = (sequence, failures)
            self.positions[shard_id] = ("AT_SEQUENCE_NUMBER", sequence)
            self.stop.wait(self.retry_s)
            return
        self.park(failure_record(record, shard_id=shard_id, function_arn=self.function.arn,
                                 stream_arn=self.stream_arn, attempts=failures, error=self.last_error))
        self.parked += 1
        log.warning("%s: record %s failed %d time(s); parked in its on-failure destination (%s)",
                    self.function.name, sequence, failures, self.last_error)
        self.attempts.pop(shard_id, None)
        self.pending_since.pop(shard_id, None)
        self.limits.pop(shard_id, None)
        self.positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", sequence)

    def _deliver(self, records: list[dict[str, Any]]) -> int | None:
        try:
            response = self.handler({"Records": records}, self.function.context())
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s failed on a batch of %d record(s), retrying it: %s",
                        self.function.name, len(records), exc)
            return 0
        at = first_failure(records, response)
        if at is not None:
            self.last_error = f"{self.function.name} reported record {records[at]['dynamodb'].get('SequenceNumber')} failed"
        return at

    def _iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id,
                                  "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])
