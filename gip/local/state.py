"""The local stack's event log on disk: saved on stop, appended back on start.

The log is the truth, so it is the only thing kept: ``<state-dir>/events.jsonl`` holds a header
line, then every stored event exactly as stored (``{"event": ...}``) and every webhook delivery
marker (``{"marker": {"delivery_id", "occurred_at"}}``), so a redelivery after a restart is
still a duplicate. It is written to a temporary file and renamed, so a crash mid-save leaves
the previous file whole.

On start the events are appended back **through the store** (stream by stream, in version
order, each marker in the transaction of its delivery's first event: a command's marker, keyed
``comment-<id>``, with the ``IssueReceived`` carrying that ``comment_id``; every saved marker
goes back, so a redelivered old ``/reproduce`` is still a duplicate), and every projection row
is rebuilt by folding the log with the same reducers ``replay --verify --repair`` uses
(:class:`gip.services.projection.Projections`). What was in flight comes back as the fold
leaves it: a leased account keeps its lease, whose expiry has passed or soon will, and the
sweeper times it out (run failed, retryable; account to cleanup), as it would in AWS. The queue
messages of unfinished work (queued or retryable runs, accounts being cleaned) went with the old
embedded AWS: :mod:`gip.local.requeue` sends them again, as the bus rules first did.

A file that cannot be read or parsed is never overwritten or ignored: :func:`load` raises one
line naming the file, and the stack refuses to start unless ``--fresh`` (which moves the old
file aside, never deletes it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gip.domain.envelope import Envelope
from gip.errors import GipError

FORMAT = "gip-local-event-log"
VERSION = 1
CHUNK = 25  # events per append: one TransactWriteItems holds at most 100 items
MAX_ITEMS = 100  # events and markers in one append (one transaction)


@dataclass
class Saved:
    """What the file holds."""

    events: list[Envelope] = field(default_factory=list)
    markers: list[dict[str, str]] = field(default_factory=list)


def log_path(state_dir: Path) -> Path:
    return state_dir / "events.jsonl"


def from_items(items: Iterable[Mapping[str, Any]]) -> Saved:
    """Pure: DynamoDB items of the events table (attribute-value form) → events and markers.
    Other items (the day index, oversized notes) are derived or operational: not kept."""
    saved = Saved()
    for item in items:
        if "body" in item:
            saved.events.append(json.loads(item["body"]["S"]))
        elif item.get("kind", {}).get("S") == "marker":
            saved.markers.append({"delivery_id": item["pk"]["S"].removeprefix("delivery-"),
                                  "occurred_at": item.get("occurred_at", {}).get("S", "")})
    saved.events.sort(key=lambda e: (e["stream"], e["version"]))
    return saved


def dump(saved: Saved, path: Path) -> None:
    """Write ``saved`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        header = {"format": FORMAT, "version": VERSION, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "events": len(saved.events), "markers": len(saved.markers)}
        out.write(json.dumps(header, sort_keys=True) + "\n")
        for event in saved.events:
            out.write(json.dumps({"event": event}, sort_keys=True, ensure_ascii=False) + "\n")
        for marker in saved.markers:
            out.write(json.dumps({"marker": marker}, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load(path: Path) -> Saved | None:
    """The saved log, None when there is none; GipError (one line naming the file) when it
    cannot be read or is not a complete saved log."""
    if not path.exists():
        return None
    saved = Saved()
    try:
        with open(path, encoding="utf-8") as handle:
            lines = iter(handle)
            header = json.loads(next(lines, "null"))
            if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
                raise ValueError(f"line 1 is not a {FORMAT} v{VERSION} header")
            for number, line in enumerate(lines, start=2):
                doc = json.loads(line)
                if isinstance(doc, dict) and isinstance(doc.get("event"), dict) and "stream" in doc["event"]:
                    saved.events.append(doc["event"])
                elif isinstance(doc, dict) and isinstance(doc.get("marker"), dict) and "delivery_id" in doc["marker"]:
                    saved.markers.append(doc["marker"])
                else:
                    raise ValueError(f"line {number} is neither an event nor a delivery marker")
            if len(saved.events) != header.get("events") or len(saved.markers) != header.get("markers"):
                raise ValueError(f"it is incomplete ({len(saved.events)} of {header.get('events')} events)")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GipError(f"cannot use the saved event log {path}: {exc}; nothing was changed "
                       f"(start with --fresh to set it aside and begin empty)") from exc
    return saved


def set_aside(path: Path) -> Path | None:
    """``--fresh``: move an existing log aside (never deleted); where it went, or None."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.replace(path, aside)
    return aside


def delivery_keys(event: Envelope) -> list[str]:
    """Pure: the marker keys an event can be the first event of: its ``correlation_id`` (the
    X-GitHub-Delivery), and for a command's ``IssueReceived`` also ``comment-<id>`` (a command is
    de-duplicated on its comment, :attr:`gip.domain.qualify.Receive.dedupe_key`)."""
    keys = [str(event.get("correlation_id"))]
    comment = (event.get("data") or {}).get("comment_id")
    if event["type"] == "IssueReceived" and comment is not None:
        keys.insert(0, f"comment-{comment}")
    return keys


def appends(saved: Saved) -> Iterator[tuple[str, int, list[Envelope], list[dict[str, str]]]]:
    """Pure: ``(stream, expected_version, events, markers)`` per append, in version order and
    chunks of :data:`CHUNK`; each marker goes with the first event of its delivery (the webhook
    writes it with the issue event whose ``correlation_id`` is the delivery id, or, for a
    command, whose ``comment_id`` the ``comment-<id>`` key names; an issue stream's event is
    preferred). A marker no event names still goes back, with the first appends that have room
    (:data:`MAX_ITEMS` per transaction): every saved marker is restored."""
    first_of: dict[str, tuple[str, int]] = {}
    for event in sorted(saved.events, key=lambda e: (not e["stream"].startswith("issue-"), e["occurred_at"])):
        for key in delivery_keys(event):
            first_of.setdefault(key, (event["stream"], event["version"]))
    by_stream: dict[str, list[Envelope]] = {}
    for event in sorted(saved.events, key=lambda e: (e["stream"], e["version"])):
        by_stream.setdefault(event["stream"], []).append(event)
    markers: dict[tuple[str, int], list[dict[str, str]]] = {}
    unplaced = []
    for marker in saved.markers:
        where = first_of.get(marker["delivery_id"])
        if where is None:
            unplaced.append(marker)
        else:
            markers.setdefault(where, []).append(marker)
    for stream, events in by_stream.items():
        for start in range(0, len(events), CHUNK):
            chunk = events[start:start + CHUNK]
            rows = [m for e in chunk for m in markers.get((stream, e["version"]), [])]
            room = max(0, MAX_ITEMS - len(chunk) - len(rows))
            rows, unplaced = rows + unplaced[:room], unplaced[room:]
            yield stream, chunk[0]["version"] - 1, chunk, rows


def restore(store: Any, saved: Saved) -> tuple[int, int]:
    """Append the saved log back through ``store`` and rebuild every projection row by
    folding it. Returns (events appended, markers restored)."""
    from gip.services.projection import Projections
    from gip.store.protocols import CountsRow, DeliveryMarker

    restored = 0
    for stream, after, events, rows in appends(saved):
        marker_rows = [DeliveryMarker(m["delivery_id"], m["occurred_at"]) for m in rows]
        store.append(stream, after, events, rows=marker_rows)  # append numbers them the same again
        restored += len(marker_rows)
    projections = Projections(store)
    done = projections.repair(list(saved.events))
    if done.refused:
        raise GipError(f"rebuilding the projections refused {', '.join(done.refused)}")
    first = min((e["occurred_at"][:10] for e in saved.events if e["type"] == "AccountRegistered"), default=None)
    row = store.counts_row()
    if row is not None and first is not None and row.first_day != first:
        store.put_counts(CountsRow(row.counts, first), expected=row)
    return len(saved.events), restored


def summary(saved: Saved) -> str:
    streams = {e["stream"] for e in saved.events}
    return f"{len(saved.events)} event(s) in {len(streams)} stream(s), {len(saved.markers)} delivery marker(s)"


def restore_stack(saved: Saved, *, pollers: Iterable[Any], path: Path) -> str:
    """Local mode's start: restore into the deployed tables, then move each stream poller past
    the restored records (they were on the bus before the stop: never published twice)."""
    import boto3

    from gip.config import Settings
    from gip.local import requeue
    from gip.store.dynamodb import DynamoEventStore
    from gip.store.models import Tables

    settings = Settings.from_env()
    appended, markers = restore(DynamoEventStore(Tables.from_settings(settings)), saved)
    skipped = sum(p.skip_to_end() for p in pollers)
    account = boto3.client("sts", region_name=settings.region).get_caller_identity()["Account"]
    sent = requeue.send(boto3.client("sqs", region_name=settings.region), saved.events, prefix=settings.prefix,
                        account=account, region=settings.region)
    again = ", ".join(f"{n} to {settings.prefix}-{queue}" for queue, n in sent.items()) or "none"
    return (f"restored {appended} event(s) and {markers} delivery marker(s) from {path}; projections "
            f"rebuilt by folding them ({skipped} stream record(s) not published again); "
            f"queue messages of unfinished work sent again: {again}")


def save_stack(ddb: Any, path: Path) -> str:
    """Local mode's stop: the events table (a consistent scan) → ``path``."""
    from gip.config import Settings

    pages = ddb.get_paginator("scan").paginate(TableName=Settings.from_env().events_table, ConsistentRead=True)
    saved = from_items(item for page in pages for item in page["Items"])
    dump(saved, path)
    return f"event log saved: {summary(saved)} in {path}"
