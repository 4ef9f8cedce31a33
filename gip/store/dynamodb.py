"""The DynamoDB event store (pynamodb): append with optimistic concurrency, read by stream, by
time (the ``by-day`` index), by correlation. Each put is conditional on
``attribute_not_exists(pk)``; projection rows (:mod:`gip.store.dynamo_rows`) go in the same
TransactWriteItems. The contracts are :mod:`gip.store.protocols`; pynamodb stays in this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pynamodb.exceptions import PutError, TransactWriteError

from gip.domain.envelope import Envelope, dumps, iso, loads
from gip.errors import ConcurrencyConflict, StoreUnavailable
from gip.store.dynamo_rows import DynamoProjections, TransactItem, storage_errors, transact_item
from gip.store.dynamo_rows import code as _code
from gip.store.models import EventItem, Tables
from gip.store.protocols import (
    DeliveryMarker,
    DuplicateDelivery,
    RowWrite,
    days_to_read,
    finish,
    prepare,
)

__all__ = ["DynamoEventStore", "storage_errors"]

DAYS_PK = "log-days"  # the day index's items (no ``day`` attribute: they stay out of by-day)


class DynamoEventStore(DynamoProjections):
    """The three tables through pynamodb: the event log and its projection rows
    (:class:`~gip.store.protocols.Store`). Build once per container."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._days_noted: set[str] = set()  # days this instance has put in the day index

    # --- writing -----------------------------------------------------------------------
    def item_for(self, event: Envelope) -> EventItem:
        occurred = event["occurred_at"]
        return self.tables.events(
            event["stream"], event["version"],
            event_id=event["event_id"], type_=event["type"], occurred_at=occurred,
            day=occurred[:10], ts=f"{occurred}#{event['event_id']}",
            correlation_id=event["correlation_id"], body=dumps(event),
        )

    def delivery_marker(self, delivery_id: str, *, occurred_at: str) -> DeliveryMarker:
        """The idempotency marker for one X-GitHub-Delivery, to write with its first event."""
        return DeliveryMarker(delivery_id, occurred_at)

    def append(
        self, stream: str, expected_version: int, events: Sequence[Envelope], *,
        rows: Sequence[RowWrite] = (),
    ) -> list[Envelope]:
        """Append ``events`` after ``expected_version``, with ``rows`` in the same transaction.

        Raises ConcurrencyConflict (stream moved on, or a row's condition failed),
        DuplicateDelivery (a delivery marker exists) or InvalidEvent (nothing written).
        Re-appending the same event ids at the same versions is a no-op.
        """
        prepared = prepare(stream, expected_version, events)
        if not prepared:
            return []
        items = [self.item_for(e) for e in prepared]
        writes = [transact_item(self.tables, row) for row in rows]
        self._note_days({e["occurred_at"][:10] for e in prepared})
        not_exists = self.tables.events.pk.does_not_exist()
        try:
            if len(items) == 1 and not writes:
                items[0].save(condition=not_exists)
            else:
                self._transact(items, writes)
        except (PutError, TransactWriteError) as exc:
            return self._explain(exc, stream, expected_version, prepared, writes)
        return prepared

    def _explain(
        self, exc: PutError | TransactWriteError, stream: str, expected_version: int,
        prepared: list[Envelope], rows: Sequence[TransactItem],
    ) -> list[Envelope]:
        """Turn a failed write into the right error, or into an idempotent no-op.

        Only a ConditionalCheckFailed on an item we conditioned means conflict or duplicate;
        any other failure (throttling, validation, internal) is StoreUnavailable.
        """
        # TransactWriteItems reports one reason per item, in pynamodb's order: puts, then updates.
        ordered: list[tuple[str, TransactItem | None]] = [("event", None)] * len(prepared)
        ordered += [(r.tag, r) for r in rows if r.kind == "put"]
        ordered += [(r.tag, r) for r in rows if r.kind == "update"]
        failed = _condition_failures(exc, ordered, stream=stream, expected_version=expected_version)
        for tag, row in failed:
            if tag == "delivery" and row is not None:
                raise DuplicateDelivery(row.delivery_id) from exc
        if any(tag == "event" for tag, _ in failed):
            stored, at = self._taken(exc, stream, prepared, ordered)
            if stored is None:  # the cancellation did not tell: read what holds those versions
                stored = self.read(stream, after=expected_version, raw=True)
                at = expected_version + len(stored)
            if [e["event_id"] for e in stored[: len(prepared)]] == [e["event_id"] for e in prepared]:
                return stored[: len(prepared)]  # the same events are already there: a no-op
            if at is None:  # other events, and no row of the stream told its version
                at = expected_version + len(self.read(stream, after=expected_version, raw=True))
            raise ConcurrencyConflict(stream, expected_version, f"stream is at version {at}") from exc
        unconditioned = sorted({tag for tag, row in failed if row is None or row.condition is None})
        if unconditioned or not failed:  # a failure we cannot attribute is not a conflict
            raise StoreUnavailable(f"append to {stream}", _code(exc),
                                   f"cancelled on {', '.join(unconditioned) or 'no item'}") from exc
        tag = failed[0][0]
        detail = "projection row changed" if tag == "row" else f"{tag} condition failed"
        raise ConcurrencyConflict(stream, expected_version, detail) from exc

    def _taken(
        self, exc: PutError | TransactWriteError, stream: str, prepared: list[Envelope],
        ordered: list[tuple[str, TransactItem | None]],
    ) -> tuple[list[Envelope] | None, int | None]:
        """What a cancelled transaction says is stored, without a read: the events at the
        versions asked for (each event put returns the item it found, ``ALL_OLD``), or None if
        any is missing; and the stream's version, from its own projection row's old item (every
        command writes the row with its events, so its version is the stream's), or None."""
        if not isinstance(exc, TransactWriteError) or len(exc.cancellation_reasons) != len(ordered):
            return None, None  # a single put (no old item), or reasons that were refused above
        old = [r.raw_item if r is not None else None for r in exc.cancellation_reasons]
        model = self.tables.events
        bodies = [model.from_raw_data(raw).body if raw else None for raw in old[: len(prepared)]]
        stored = [finish(loads(b), True) for b in bodies if b]
        at = None
        for (tag, _), raw in zip(ordered, old, strict=True):
            if tag == "row" and raw and raw.get("pk", {}).get("S") == stream and "N" in raw.get("version", {}):
                at = int(raw["version"]["N"])  # an account's or an issue's row: pk = its stream
        return (stored if len(stored) == len(prepared) else None), at

    def _transact(self, items: list[EventItem], rows: Sequence[TransactItem]) -> None:
        from pynamodb.transactions import TransactWrite

        not_exists = self.tables.events.pk.does_not_exist()
        with TransactWrite(connection=self.tables.connection) as tx:
            # ALL_OLD: a failed condition returns the item it found (``_taken``), which tells a
            # retried append from a lost race without reading the stream again.
            for item in items:
                tx.save(item, condition=not_exists, return_values="ALL_OLD")
            for row in rows:
                if row.kind == "put":
                    tx.save(row.item, condition=row.condition, return_values="ALL_OLD")
            for row in rows:
                if row.kind == "update":
                    tx.update(row.item, row.actions, condition=row.condition)

    def _note_days(self, wanted: set[str]) -> None:
        """Put each new day in the day index *before* its first event (an unconditional,
        idempotent PutItem, once per day per instance): a crash in between leaves at worst a day
        indexed that holds nothing, never a day with events missing from the index."""
        for day in sorted(wanted - self._days_noted):
            with storage_errors(f"index the day {day}"):
                self.tables.events(DAYS_PK, int(day.replace("-", "")), kind="day", day_listed=day).save()
            self._days_noted.add(day)

    # --- reading -----------------------------------------------------------------------
    def _events(self, results: Iterable[EventItem], raw: bool) -> Iterator[Envelope]:
        for item in results:
            if item.body:
                yield finish(loads(item.body), raw)

    def read(self, stream: str, *, after: int = 0, raw: bool = False) -> list[Envelope]:
        """Every event of ``stream`` with version > ``after``, in order (consistent read)."""
        model = self.tables.events
        with storage_errors(f"read {stream}"):
            return list(self._events(model.query(stream, model.sk > after, consistent_read=True), raw))

    def read_window(
        self, since: datetime, until: datetime, *, raw: bool = False
    ) -> Iterator[Envelope]:
        """Events with ``since <= occurred_at <= until`` in time order, through the time index.

        One query per UTC day of the window that holds events (:meth:`log_days`; every day
        before the index's first); pynamodb pages past 1 MB by itself.
        """
        lo, hi = iso(since), iso(until) + "~"
        index = self.tables.events.by_day
        for day in days_to_read(since, until, self.log_days()):
            with storage_errors(f"read the time index for {day}"):
                yield from self._events(index.query(day, self.tables.events.ts.between(lo, hi)), raw)

    def log_days(self) -> list[str]:
        """The day index: one item per day under ``pk = log-days``, ``sk = YYYYMMDD``."""
        with storage_errors("read the day index"):
            return [item.day_listed for item in self.tables.events.query(DAYS_PK) if item.day_listed]

    def read_correlation(self, correlation_id: str, *, raw: bool = False) -> Iterator[Envelope]:
        """Every event of one delivery, across streams, in time order."""
        with storage_errors(f"read correlation {correlation_id}"):
            yield from self._events(self.tables.events.by_correlation.query(correlation_id), raw)

    def note_oversized(self, delivery_id: str, *, event: str, at: str) -> None:
        with storage_errors(f"record oversized delivery {delivery_id}"):
            self.tables.events(f"oversized-{delivery_id}", 0, kind="oversized", type_=event[:64],
                               occurred_at=at).save()


_CONDITION = "ConditionalCheckFailed"
# A cancellation reason meaning another transaction was on the same item at the same moment:
# contention, so re-read and re-decide (ConcurrencyConflict), never "duplicate".
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
_CONTENTION = "TransactionConflict"


def _condition_failures(
    exc: PutError | TransactWriteError, ordered: list[tuple[str, TransactItem | None]], *, stream: str,
    expected_version: int,
) -> list[tuple[str, TransactItem | None]]:
    """The (tag, row) entries whose condition failed; ConcurrencyConflict for contention;
    StoreUnavailable for anything else."""
    code = _code(exc)
    if code == "ConditionalCheckFailedException" and len(ordered) == 1:
        return list(ordered)  # a single put: its only condition is the event's
    if code != "TransactionCanceledException" or not isinstance(exc, TransactWriteError):
        raise StoreUnavailable(f"append to {stream}", code, exc.cause_response_message or "") from exc
    reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
    if len(reasons) != len(ordered):
        raise StoreUnavailable(f"append to {stream}", code,
                               f"{len(reasons)} cancellation reasons for {len(ordered)} items") from exc
    other = sorted({r for r in reasons if r not in (None, "None", _CONDITION, _CONTENTION)})
    if other:
        raise StoreUnavailable(f"append to {stream}", code, ", ".join(other)) from exc
    failed = [entry for entry, reason in zip(ordered, reasons, strict=True) if reason == _CONDITION]
    if not failed and _CONTENTION in reasons:
        raise ConcurrencyConflict(stream, expected_version, "transaction conflict") from exc
    return failed



if TYPE_CHECKING:  # mypy proves the class meets the contract the services take
    from gip.store.protocols import Store

    def _conforms(tables: Tables) -> Store:
        return DynamoEventStore(tables)
