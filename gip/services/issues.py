"""Issue commands: every issue event is appended together with the issue's projection row,
conditioned on the row's version, in one store transaction.

``receive`` is the webhook's path: one consistent read of the issue row and the delivery
marker, then one transaction (delivery marker + IssueReceived + row). A second delivery with the same id, or a
trigger for an issue that is already active, appends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gip.config import Settings
from gip.domain.envelope import Cause, Envelope, iso, issue_stream, new_event, utcnow
from gip.domain.issue import QUEUED, RECEIVED, Issue, evolve
from gip.errors import ConcurrencyConflict
from gip.store.protocols import DeliveryMarker, DuplicateDelivery, IssuePut, RowWrite, Store

if TYPE_CHECKING:
    from gip.store.models import Tables


@dataclass(frozen=True)
class ReceiveResult:
    """What ``receive`` did: ``reason`` is received, duplicate_delivery or already_active."""

    appended: bool
    reason: str
    issue: Issue | None
    event: Envelope | None = None


@dataclass
class Issues:
    """The issue streams' command side. Build once per container."""

    store: Store
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: Settings, tables: Tables | None = None) -> Issues:
        """The composition root: the DynamoDB store for ``settings``."""
        from gip.store.dynamodb import DynamoEventStore
        from gip.store.models import Tables

        return cls(store=DynamoEventStore(tables or Tables.from_settings(settings)))

    def get(self, repo: str, number: int) -> Issue | None:
        return self.get_stream(issue_stream(repo, number))

    def get_stream(self, stream: str) -> Issue | None:
        """The issue's projection row (consistent read), or None."""
        return self.store.issue(stream)

    def receive(self, *, delivery_id: str, repo: str, number: int, data: Mapping[str, object],
                cause: Cause) -> ReceiveResult:
        """Append IssueReceived for a new run, once per delivery and once per active run.

        One consistent read takes the issue row and the delivery marker together, so any
        redelivery costs one call; a new run costs one more (the transaction).
        """
        state, seen = self.store.issue_and_delivery(issue_stream(repo, number), delivery_id)
        if seen:
            return ReceiveResult(False, "duplicate_delivery", state)
        for attempt in (1, 2):  # a lost race (opened + labeled at once) is re-decided once
            if state is not None and state.active:
                return ReceiveResult(False, "already_active", state)
            run_data = {**data, "run": (state.run if state else 0) + 1}
            marker = DeliveryMarker(delivery_id, occurred_at=iso(self.clock()))
            try:
                event = self._append(repo, number, "IssueReceived", run_data, cause, state, [marker])
            except DuplicateDelivery:
                return ReceiveResult(False, "duplicate_delivery", state)
            except ConcurrencyConflict:
                state = self.get(repo, number)
                if attempt == 2 and not (state is not None and state.active):
                    raise  # "already active" only when the row says so: never a guess
                continue
            return ReceiveResult(True, "received", evolve(state, event), event)
        return ReceiveResult(False, "already_active", state)

    def record(self, repo: str, number: int, type_: str, data: Mapping[str, object], *, cause: Cause,
               expected: Issue | None = None) -> Envelope:
        """Append one event to the issue's stream (IllegalTransition / ConcurrencyConflict)."""
        state = expected if expected is not None else self.get(repo, number)
        return self._append(repo, number, type_, data, cause, state, [])

    def cancel(self, repo: str, number: int, *, reason: str, cause: Cause) -> Envelope | None:
        """IssueSkipped(reason) if the issue is waiting to run; None otherwise."""
        state = self.get(repo, number)
        if state is None or not (state.status in (RECEIVED, QUEUED) or state.awaiting_retry):
            return None
        return self.record(repo, number, "IssueSkipped", {"reason": reason, "run": state.run},
                           cause=cause, expected=state)

    def _append(self, repo: str, number: int, type_: str, data: Mapping[str, object], cause: Cause,
                state: Issue | None, extra: list[RowWrite]) -> Envelope:
        stream = issue_stream(repo, number)
        version = state.version if state else 0
        event = new_event(type_, stream=stream, data=dict(data), cause=cause, occurred_at=self.clock())
        after = evolve(state, {**event, "version": version + 1})  # type: ignore[typeddict-item]
        rows: list[RowWrite] = [IssuePut(after, state.version if state else None), *extra]
        return self.store.append(stream, version, [event], rows=rows)[0]
