"""The outbox: events-table stream records -> EventBridge PutEvents on the bus.

An event is published if and only if it was stored: the only input is the table's stream
(NEW_IMAGE), only INSERTs of items that carry a ``body`` are published, and ``Detail`` is that
``body`` exactly as written (``source`` = the prefix, ``detail-type`` = the event type).
Delivery markers (no ``body``), MODIFY and REMOVE records are skipped.

PutEvents takes at most 10 entries and 256 KB per request
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html), and may
fail single entries; only those are resent, a bounded number of times. What still fails is
reported as a partial batch failure
(https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html).
A stream shard is ordered, and Lambda resumes from the lowest reported sequence number, so
the first failed record *and every later one* are reported, and no later batch is sent.
Records after a failure may therefore reach the bus twice: delivery is at least once and
consumers are idempotent on ``event_id``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
TIME_BYTES = 14  # what a Time field counts for in the size rule, whatever its value
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Outgoing:
    """One stored event turned into a PutEvents entry, with the record it came from."""

    index: int  # position of the record in the batch
    entry: Mapping[str, Any]
    size: int


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


def entry_size(entry: Mapping[str, Any]) -> int:
    """Bytes an entry counts for against the 256 KB request limit (AWS's published rule)."""
    size = TIME_BYTES if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode("utf-8"))
    size += sum(len(r.encode("utf-8")) for r in entry.get("Resources", ()))
    return size


def batches(outgoing: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """Split in order into requests of at most 10 entries and at most 256 KB."""
    result: list[list[Outgoing]] = []
    current: list[Outgoing] = []
    used = 0
    for item in outgoing:
        if current and (len(current) == MAX_ENTRIES or used + item.size > MAX_REQUEST_BYTES):
            result.append(current)
            current, used = [], 0
        current.append(item)
        used += item.size
    if current:
        result.append(current)
    return result


def publish_records(
    records: Sequence[Mapping[str, Any]],
    *,
    client: Any,
    bus_name: str,
    source: str,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict[str, list[dict[str, str]]]:
    """Publish the stored events among ``records``; return the partial-batch-failure answer."""
    outgoing, first_bad = _collect(records, source=source, bus_name=bus_name)
    # Our own loop, not Powertools' BatchProcessor: stream order must hold, so stop at the first failure.
    for batch in batches(outgoing):
        failed = _send(batch, client=client, sleep=sleep, max_attempts=max_attempts)
        if failed is not None:
            first_bad = failed if first_bad is None else min(first_bad, failed)
            break
    if first_bad is None:
        return {"batchItemFailures": []}
    later = records[first_bad:]
    log.warning("publisher: %d of %d record(s) left for the stream to retry", len(later), len(records))
    return {"batchItemFailures": [{"itemIdentifier": _sequence(r)} for r in later]}


def _collect(
    records: Iterable[Mapping[str, Any]], *, source: str, bus_name: str
) -> tuple[list[Outgoing], int | None]:
    """Entries for the records before the first unpublishable one, and that one's index."""
    outgoing: list[Outgoing] = []
    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        image = record.get("dynamodb", {}).get("NewImage", {})
        try:
            entry = entry_for(image, source=source, bus_name=bus_name)
            if entry is None:
                continue
            size = entry_size(entry)
            if size > MAX_REQUEST_BYTES:
                raise Unpublishable(f"entry is {size} bytes, over the {MAX_REQUEST_BYTES} limit")
        except Unpublishable as exc:
            log.error("publisher: record %s cannot be published: %s", _sequence(record), exc)
            return outgoing, index
        outgoing.append(Outgoing(index=index, entry=entry, size=size))
    return outgoing, None


def _send(
    batch: Sequence[Outgoing], *, client: Any, sleep: Callable[[float], None], max_attempts: int
) -> int | None:
    """PutEvents one batch, resending only failed entries; the first index still failing."""
    pending = list(batch)
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.put_events(Entries=[item.entry for item in pending])
        except Exception as exc:  # any transport or service error: the whole request failed
            log.warning("publisher: PutEvents failed (attempt %d): %s", attempt, exc)
            results: list[Mapping[str, Any]] = [{"ErrorCode": type(exc).__name__}] * len(pending)
        else:
            results = response.get("Entries", [])
        # A result without EventId (or a missing result) is a failure: never assume success.
        failed = [(item, r) for item, r in _pad(pending, results) if not r.get("EventId")]
        if not failed:
            return None
        pending = [item for item, _ in failed]
        codes = sorted({str(r.get("ErrorCode", "?")) for _, r in failed})
        log.warning("publisher: %d entr(ies) failed (attempt %d): %s", len(pending), attempt, codes)
        if attempt < max_attempts:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    return min(item.index for item in pending)


def _pad(
    items: Sequence[Outgoing], results: Sequence[Mapping[str, Any]]
) -> list[tuple[Outgoing, Mapping[str, Any]]]:
    padded = list(results) + [{}] * max(0, len(items) - len(results))
    return list(zip(items, padded, strict=False))


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
