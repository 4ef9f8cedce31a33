"""The outbox: events-table stream records -> EventBridge PutEvents on the bus.

An event is published if and only if it was stored: the only input is the table's stream
(NEW_IMAGE), only INSERTs of items that carry a ``body`` are published, and ``Detail`` is that
``body`` exactly as written (``source`` = the prefix, ``detail-type`` = the event type).
Delivery markers (no ``body``), MODIFY and REMOVE records are skipped.

Requests go through :func:`gip.adapters.bus.put_events` (both PutEvents limits, only failed
entries resent, a bounded number of times). What still fails is reported as a partial batch
failure (https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html).
A stream shard is ordered, and Lambda resumes from the lowest reported sequence number, so
the first failed record *and every later one* are reported, and no later request is sent.
Records after a failure may therefore reach the bus twice: delivery is at least once and
consumers are idempotent on ``event_id``.

The published events are also counted (:func:`gip.domain.metrics.from_event`): every stored
event passes here once, in order, so this is where the event metrics are emitted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from gip.adapters import bus
from gip.adapters.bus import MAX_REQUEST_BYTES, entry_size
from gip.domain import metrics as metric

__all__ = ["MAX_REQUEST_BYTES", "Unpublishable", "entry_for", "entry_size", "publish_records"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = bus.MAX_ATTEMPTS


class Unpublishable(Exception):
    """A stored event that can never become a valid PutEvents entry (reported, not dropped)."""


def entry_for(image: Mapping[str, Any], *, source: str, bus_name: str) -> dict[str, Any] | None:
    """The PutEvents entry for a NewImage, or None for an item without ``body`` (a marker)."""
    body = image.get("body", {}).get("S") if isinstance(image.get("body"), dict) else None
    if body is None:
        return None
    try:
        envelope = json.loads(body)
        detail_type = envelope["type"]
    except (ValueError, TypeError, KeyError) as exc:
        raise Unpublishable(f"stored body is not an envelope: {exc}") from exc
    if not isinstance(detail_type, str) or not detail_type:
        raise Unpublishable("stored envelope has no type")
    entry: dict[str, Any] = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": body,
        "EventBusName": bus_name,
    }
    occurred = _parse_time(envelope.get("occurred_at"))
    if occurred is not None:
        entry["Time"] = occurred
    return entry


def publish_records(
    records: Sequence[Mapping[str, Any]],
    *,
    client: Any,
    bus_name: str,
    source: str,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
    metrics: Callable[[list[metric.Point]], None] | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Publish the stored events among ``records``; return the partial-batch-failure answer.
    ``metrics`` gets the points of the events that reached the bus (not of those left to retry)."""
    outgoing, first_bad = _collect(records, source=source, bus_name=bus_name)
    # Not Powertools' BatchProcessor: stream order must hold, so stop at the first failure.
    failed = bus.put_events(client, [entry for _, entry in outgoing], sleep=sleep,
                            max_attempts=max_attempts, stop_at_failure=True)
    if failed:
        failed_at = outgoing[min(f.index for f in failed)][0]
        first_bad = failed_at if first_bad is None else min(first_bad, failed_at)
    if metrics is not None:
        _count([entry for index, entry in outgoing if first_bad is None or index < first_bad], metrics)
    if first_bad is None:
        return {"batchItemFailures": []}
    later = records[first_bad:]
    log.warning("publisher: %d of %d record(s) left for the stream to retry", len(later), len(records))
    return {"batchItemFailures": [{"itemIdentifier": _sequence(r)} for r in later]}


def _collect(
    records: Iterable[Mapping[str, Any]], *, source: str, bus_name: str
) -> tuple[list[tuple[int, dict[str, Any]]], int | None]:
    """(record index, entry) for the records before the first unpublishable one, and its index."""
    outgoing: list[tuple[int, dict[str, Any]]] = []
    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        image = record.get("dynamodb", {}).get("NewImage", {})
        try:
            entry = entry_for(image, source=source, bus_name=bus_name)
            if entry is None:
                continue
            size = entry_size(entry)
            if not bus.fits(size):
                raise Unpublishable(f"entry is {size} bytes, over the {MAX_REQUEST_BYTES} limit")
        except Unpublishable as exc:
            log.error("publisher: record %s cannot be published: %s", _sequence(record), exc)
            return outgoing, index
        outgoing.append((index, entry))
    return outgoing, None


def _count(published: list[dict[str, Any]], emit: Callable[[list[metric.Point]], None]) -> None:
    """Emit the published events' metrics; a metric never fails the batch (logged instead)."""
    try:
        points = [p for entry in published for p in metric.from_event(json.loads(entry["Detail"]))]
        if points:
            emit(points)
    except Exception:
        log.exception("publisher: metrics not emitted")


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
