"""The events table's stream → the publisher, the way a Lambda event source mapping does it.

Poll each shard with the ``dynamodbstreams`` API (``GetShardIterator`` TRIM_HORIZON, then
``GetRecords`` up to the mapping's batch size), hand the batch to the mapped function as a
real-shaped ``{"Records": [...]}`` event, and honour ReportBatchItemFailures: the shard
resumes at the lowest failed sequence number (``AT_SEQUENCE_NUMBER``), so that record and
every later one come back, as Lambda does for an ordered stream. A raised error retries the
whole batch. https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html

Every stored event the publisher got through is also shown by the printer.

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
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

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


class StreamPoller(threading.Thread):
    """One thread per stream mapping; stops when ``stop`` is set."""

    def __init__(self, *, client: Any, function: Function, handler: Handler, stream_arn: str,
                 region: str, batch_size: int, stop: threading.Event,
                 on_event: Callable[[dict[str, Any]], None], idle_s: float = 0.3,
                 retry_s: float = 1.0) -> None:
        super().__init__(name="stream-poller", daemon=True)
        self.client, self.function, self.handler = client, function, handler
        self.stream_arn, self.region, self.batch_size = stream_arn, region, min(batch_size, 1000)
        self.stop, self.on_event, self.idle_s, self.retry_s = stop, on_event, idle_s, retry_s
        self.positions: dict[str, tuple[str, str | None]] = {}  # shard → (iterator type, sequence)

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

    def poll_once(self) -> bool:
        """Read and deliver one batch per shard; True if anything was delivered."""
        if not self.positions:
            shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            for shard in shards:
                self.positions[shard["ShardId"]] = ("TRIM_HORIZON", None)
        busy = False
        for shard_id, (kind, sequence) in list(self.positions.items()):
            iterator = self._iterator(shard_id, kind, sequence)
            page = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = [lambda_record(r, source_arn=self.stream_arn, region=self.region)
                       for r in page.get("Records", [])]
            if not records:
                continue
            busy = True
            retry_at = self._deliver(records)
            done = records if retry_at is None else records[:retry_at]
            for record in done:
                event = stored_event(record)
                if event is not None:
                    self.on_event(event)
            if retry_at is None:
                last = str(records[-1]["dynamodb"]["SequenceNumber"])
                self.positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
            else:
                first = str(records[retry_at]["dynamodb"]["SequenceNumber"])
                self.positions[shard_id] = ("AT_SEQUENCE_NUMBER", first)
                self.stop.wait(self.retry_s)
        return busy

    def _deliver(self, records: list[dict[str, Any]]) -> int | None:
        try:
            response = self.handler({"Records": records}, self.function.context())
        except Exception as exc:
            log.warning("%s failed on a batch of %d record(s), retrying it: %s",
                        self.function.name, len(records), exc)
            return 0
        return first_failure(records, response)

    def _iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id,
                                  "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])
