"""An in-memory event store with the DynamoDB store's contract (no projection rows yet)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from datetime import datetime

from gip.domain.envelope import Envelope, iso
from gip.errors import ConcurrencyConflict
from gip.store.protocols import RowWrite, finish, prepare


class InMemoryEventStore:
    """A dict-backed store with the same contract (no projection rows)."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Envelope]] = {}

    def append(
        self, stream: str, expected_version: int, events: Sequence[Envelope], *,
        rows: Sequence[RowWrite] = (),
    ) -> list[Envelope]:
        if rows:
            raise NotImplementedError("projection rows need DynamoEventStore")
        prepared = prepare(stream, expected_version, events)
        current = self.streams.setdefault(stream, [])
        if len(current) != expected_version:
            stored = current[expected_version : expected_version + len(prepared)]
            if [e["event_id"] for e in stored] == [e["event_id"] for e in prepared]:
                return [copy.deepcopy(e) for e in stored]  # idempotent re-append
            raise ConcurrencyConflict(stream, expected_version, f"stream is at version {len(current)}")
        current.extend(copy.deepcopy(prepared))
        return prepared

    def read(self, stream: str, *, after: int = 0, raw: bool = False) -> list[Envelope]:
        return [finish(copy.deepcopy(e), raw) for e in self.streams.get(stream, [])[after:]]

    def read_window(
        self, since: datetime, until: datetime, *, raw: bool = False
    ) -> Iterator[Envelope]:
        lo, hi = iso(since), iso(until)
        selected = [
            e for events in self.streams.values() for e in events if lo <= e["occurred_at"] <= hi
        ]
        selected.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        for event in selected:
            yield finish(copy.deepcopy(event), raw)
