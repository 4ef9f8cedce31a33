"""``replay``'s pure part: which events a query selects, and how they print or go to the bus."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gip.cli.render import clip
from gip.cli.timeparse import parse_instant
from gip.domain.envelope import Envelope, dumps, iso, normalize_stream, parse_iso
from gip.errors import UsageError


@dataclass(frozen=True)
class Query:
    """What to read: parsed from the command line, validated, with times resolved."""

    streams: tuple[str, ...] = ()
    types: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    correlation_id: str | None = None

    def matches(self, event: Envelope) -> bool:
        if self.types and event["type"] not in self.types:
            return False
        if self.streams and event["stream"] not in self.streams:
            return False
        if self.correlation_id and event.get("correlation_id") != self.correlation_id:
            return False
        at = event["occurred_at"]
        if self.since is not None and at < iso(self.since):
            return False
        return not (self.until is not None and at > iso(self.until))


def build_query(*, streams: Sequence[str] = (), types: Sequence[str] = (), since: str | None = None,
                until: str | None = None, correlation_id: str | None = None, now: datetime,
                known_types: Iterable[str]) -> Query:
    """Validate filters (UsageError on a bad one) and resolve relative times against ``now``."""
    parsed_streams = []
    for value in streams:
        try:
            parsed_streams.append(normalize_stream(value.strip()))
        except ValueError as exc:
            raise UsageError(f"--stream {value!r}: expected a 12-digit account id, owner/repo#N or a stream id") from exc
    wanted = {t.strip() for value in types for t in value.split(",") if t.strip()}
    unknown = sorted(wanted - set(known_types))
    if unknown:
        raise UsageError(f"unknown --type {', '.join(unknown)}: known types are {', '.join(sorted(known_types))}")
    lo = parse_instant(since, now=now) if since else None
    hi = parse_instant(until, now=now) if until else None
    if lo and hi and lo > hi:
        raise UsageError("--since is after --until")
    return Query(tuple(parsed_streams), frozenset(wanted), lo, hi, correlation_id or None)


def summary(data: dict[str, Any], *, width: int = 70) -> str:
    """``key=value`` pairs of an event's data, compact, for the table's last column."""
    parts = []
    for key in sorted(data, key=lambda k: (k not in _FIRST, k)):  # the verdict and matrix first
        value = data[key]
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={text}")
    return clip(" ".join(parts), width)


_FIRST = ("verdict", "summary", "fixed_in", "introduced_in")  # issue 17: a matrix run's answer
EVENT_COLUMNS = [("OCCURRED_AT", "occurred_at"), ("STREAM", "stream"), ("V", "version"),
                 ("TYPE", "type"), ("ACTOR", "actor"), ("CORRELATION", "correlation_id"), ("DATA", "data")]


def event_rows(events: Iterable[Envelope]) -> Iterator[dict[str, Any]]:
    for e in events:
        suffix = f" (v{e['schema_version']})" if e.get("schema_version", 1) != 1 else ""
        yield {**e, "type": e["type"] + suffix, "data": summary(e.get("data") or {}),
               "correlation_id": e.get("correlation_id") or ""}  # whole: it is pasted into --correlation-id


def bus_entry(e: Envelope, *, prefix: str, bus: str) -> dict[str, Any]:
    """The PutEvents entry for a replay: the stored envelope plus ``"replay": true``."""
    return {
        "Source": prefix, "DetailType": e["type"], "EventBusName": bus,
        "Detail": dumps({**e, "replay": True}), "Time": parse_iso(e["occurred_at"]),
    }


def bus_entries(events: Sequence[Envelope], *, prefix: str, bus: str) -> list[dict[str, Any]]:
    """PutEvents entries for a replay (:func:`bus_entry` of each)."""
    return [bus_entry(e, prefix=prefix, bus=bus) for e in events]


