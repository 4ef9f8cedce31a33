"""The event store's contract: append with optimistic concurrency, read by stream and by time.

``append(stream, expected_version, events)`` writes versions ``expected_version + 1 …``, each
version once. Commands that also change a projection row pass :class:`RowWrite` items, written
in the **same** transaction. Events are validated against ``schemas/`` before anything is sent.

Two implementations share one contract (tests/test_store.py): :class:`~gip.store.dynamodb.DynamoEventStore`
(pynamodb) and :class:`~gip.store.memory.InMemoryEventStore`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from gip.domain import schemas
from gip.domain.envelope import Envelope
from gip.errors import GipError


class DuplicateDelivery(GipError):
    """This X-GitHub-Delivery was already appended."""

    def __init__(self, delivery_id: str) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"delivery {delivery_id} was already recorded")


@dataclass
class RowWrite:
    """A projection write to commit with the events: a pynamodb ``put`` or ``update``."""

    model: Model
    kind: Literal["put", "update"] = "put"
    actions: list[Action] = field(default_factory=list)
    condition: Condition | None = None
    tag: str = "row"  # names the failure: "row" → ConcurrencyConflict, "delivery" → DuplicateDelivery
    delivery_id: str = ""


class EventStore(Protocol):
    def append(
        self, stream: str, expected_version: int, events: Sequence[Envelope], *,
        rows: Sequence[RowWrite] = (),
    ) -> list[Envelope]: ...

    def read(self, stream: str, *, after: int = 0, raw: bool = False) -> list[Envelope]: ...

    def read_window(
        self, since: datetime, until: datetime, *, raw: bool = False
    ) -> Iterator[Envelope]: ...


def prepare(stream: str, expected_version: int, events: Sequence[Envelope]) -> list[Envelope]:
    """Number the events from ``expected_version + 1`` and validate them (nothing is written)."""
    if expected_version < 0:
        raise ValueError("expected_version must be >= 0")
    out: list[Envelope] = []
    for offset, event in enumerate(events, start=1):
        numbered: Envelope = {**event, "stream": stream, "version": expected_version + offset}
        schemas.validate(numbered)
        out.append(numbered)
    return out


def days(since: datetime, until: datetime) -> Iterator[str]:
    day = since.date()
    while day <= until.date():
        yield day.isoformat()
        day += timedelta(days=1)


def finish(event: Envelope, raw: bool) -> Envelope:
    return event if raw else schemas.upcast(event)
