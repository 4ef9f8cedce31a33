"""An in-memory store with the DynamoDB store's contracts (:mod:`gip.store.protocols`): the log,
projection rows, delivery markers, the counts row and the cleaning claim, written all or nothing.

For service tests and local experiments; one process, no persistence. Every condition of an
append is checked before anything is written, and a failure raises what DynamoDB's would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from gip.domain.envelope import Envelope, iso
from gip.domain.issue import Issue
from gip.domain.pool import Account, Counts
from gip.errors import ConcurrencyConflict
from gip.store.protocols import (
    AccountPut,
    CountsAdd,
    CountsRow,
    DeliveryMarker,
    DuplicateDelivery,
    IssuePut,
    RowWrite,
    Store,
    finish,
    prepare,
)


@dataclass(frozen=True)
class _AccountRow:
    account: Account
    rand: float
    cleaning_by: str | None = None
    claim_expires_at: str | None = None


class InMemoryEventStore:
    """Dicts behind the :class:`~gip.store.protocols.Store` contract."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Envelope]] = {}
        self.markers: dict[str, str] = {}  # delivery id → occurred_at
        self.account_rows: dict[str, _AccountRow] = {}
        self.issue_rows: dict[str, str] = {}  # stream → the folded state as JSON, as stored
        self.counts: CountsRow | None = None
        self.reconcile_strikes: tuple[dict[str, int], int] = ({}, 0)
        self.oversized: dict[str, tuple[str, str]] = {}  # delivery id → (event, at)

    # --- the log ------------------------------------------------------------------------------
    def append(
        self, stream: str, expected_version: int, events: Sequence[Envelope], *,
        rows: Sequence[RowWrite] = (),
    ) -> list[Envelope]:
        prepared = prepare(stream, expected_version, events)
        if not prepared:
            return []
        for row in rows:
            if isinstance(row, DeliveryMarker) and row.delivery_id in self.markers:
                raise DuplicateDelivery(row.delivery_id)
        current = self.streams.setdefault(stream, [])
        if len(current) != expected_version:
            stored = current[expected_version : expected_version + len(prepared)]
            if [e["event_id"] for e in stored] == [e["event_id"] for e in prepared]:
                return [copy.deepcopy(e) for e in stored]  # idempotent re-append
            raise ConcurrencyConflict(stream, expected_version, f"stream is at version {len(current)}")
        if not all(self._holds(row) for row in rows if isinstance(row, AccountPut | IssuePut)):
            raise ConcurrencyConflict(stream, expected_version, "projection row changed")
        current.extend(copy.deepcopy(prepared))
        for row in rows:
            self._write(row)
        return prepared

    def read(self, stream: str, *, after: int = 0, raw: bool = False) -> list[Envelope]:
        return [finish(copy.deepcopy(e), raw) for e in self.streams.get(stream, [])[after:]]

    def read_window(
        self, since: datetime, until: datetime, *, raw: bool = False
    ) -> Iterator[Envelope]:
        lo, hi = iso(since), iso(until)
        yield from self._sorted(lambda e: lo <= e["occurred_at"] <= hi, raw)

    def read_correlation(self, correlation_id: str, *, raw: bool = False) -> Iterator[Envelope]:
        yield from self._sorted(lambda e: e["correlation_id"] == correlation_id, raw)

    def log_days(self) -> list[str]:
        return sorted({e["occurred_at"][:10] for events in self.streams.values() for e in events})

    def _sorted(self, keep: Callable[[Envelope], bool], raw: bool) -> Iterator[Envelope]:
        selected = [e for events in self.streams.values() for e in events if keep(e)]
        selected.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        for event in selected:
            yield finish(copy.deepcopy(event), raw)

    # --- row writes -----------------------------------------------------------------------------
    def _holds(self, write: AccountPut | IssuePut) -> bool:
        if isinstance(write, IssuePut):
            stored = self.issue(write.issue.stream)
            return _version_holds(stored.version if stored else None, write.expected_version)
        row = self.account_rows.get(write.account.account_id)
        if not _version_holds(row.account.version if row else None, write.expected_version):
            return False
        return write.owner is None or (row is not None and row.cleaning_by == write.owner)

    def _write(self, write: RowWrite) -> None:
        if isinstance(write, DeliveryMarker):
            self.markers[write.delivery_id] = write.occurred_at
        elif isinstance(write, AccountPut):
            self.account_rows[write.account.account_id] = _AccountRow(write.account, write.rand)
        elif isinstance(write, IssuePut):
            self.issue_rows[write.issue.stream] = json.dumps(write.issue.as_dict(), sort_keys=True)
        else:
            self.counts = _add(self.counts, write)

    def put_row(self, write: AccountPut | IssuePut) -> bool:
        if not self._holds(write):
            return False
        self._write(write)
        return True

    def delete_row(self, kind: Literal["account", "issue"], key: str, *, expected_version: int) -> bool:
        stored = self.account(key) if kind == "account" else self.issue(key)
        if stored is None or stored.version != expected_version:
            return False
        if kind == "account":
            del self.account_rows[key]
        else:
            del self.issue_rows[key]
        return True

    def put_counts(self, row: CountsRow, *, expected: CountsRow | None) -> bool:
        if (self.counts is None) != (expected is None):
            return False
        if self.counts is not None and expected is not None and self.counts.counts != expected.counts:
            return False
        self.counts = row
        return True

    # --- accounts ---------------------------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        row = self.account_rows.get(account_id)
        return row.account if row else None

    def accounts(self) -> list[Account]:
        return [row.account for row in self.account_rows.values()]

    def sample_accounts(self, status: str, *, pivot: float, limit: int) -> list[Account]:
        rows = sorted((r for r in self.account_rows.values() if r.account.status == status),
                      key=lambda r: r.rand)
        ordered = [r for r in rows if r.rand >= pivot] + [r for r in rows if r.rand < pivot]
        return [r.account for r in ordered[:limit]]

    def leases_expiring_before(self, at: str) -> list[Account]:
        return [a for a in self._leased() if a.expires_at is not None and a.expires_at < at]

    def leases_reserved_before(self, at: str) -> list[Account]:
        return [a for a in self._leased() if a.reserved_at is not None and a.reserved_at < at]

    def _leased(self) -> list[Account]:
        return [r.account for r in self.account_rows.values() if r.account.lease_id]

    def counts_row(self) -> CountsRow | None:
        return self.counts

    def take_claim(self, account_id: str, *, version: int, status: str, owner: str, now: str,
                   expires_at: str) -> bool:
        row = self.account_rows.get(account_id)
        if row is None or row.account.version != version or row.account.status != status:
            return False
        if row.cleaning_by is not None and not (row.claim_expires_at is not None and row.claim_expires_at < now):
            return False
        self.account_rows[account_id] = replace(row, cleaning_by=owner, claim_expires_at=expires_at)
        return True

    def extend_claim(self, account_id: str, *, version: int, owner: str, expires_at: str) -> bool:
        row = self.account_rows.get(account_id)
        if row is None or row.account.version != version or row.cleaning_by != owner:
            return False
        self.account_rows[account_id] = replace(row, claim_expires_at=expires_at)
        return True

    def claim_holder(self, account_id: str) -> tuple[str | None, str | None]:
        row = self.account_rows.get(account_id)
        return (None, None) if row is None else (row.cleaning_by, row.claim_expires_at)

    # --- issues -------------------------------------------------------------------------------------
    def issue(self, stream: str) -> Issue | None:
        state = self.issue_rows.get(stream)
        return None if state is None else Issue.from_dict(json.loads(state))

    def note_oversized(self, delivery_id: str, *, event: str, at: str) -> None:
        self.oversized[delivery_id] = (event[:64], at)

    def issues(self) -> list[Issue]:
        return [Issue.from_dict(json.loads(state)) for state in self.issue_rows.values()]

    def issue_and_delivery(self, stream: str, delivery_id: str) -> tuple[Issue | None, bool]:
        return self.issue(stream), delivery_id in self.markers

    # --- reconcile's strikes ----------------------------------------------------------------------
    def strikes(self) -> tuple[dict[str, int], int]:
        stored, version = self.reconcile_strikes
        return dict(stored), version

    def save_strikes(self, strikes: Mapping[str, int], *, expected_version: int, at: str) -> bool:
        if self.reconcile_strikes[1] not in (0, expected_version):  # 0: none stored, as DynamoDB's
            return False                                              # attribute_not_exists(pk)
        self.reconcile_strikes = (dict(strikes), expected_version + 1)
        return True


def _version_holds(stored: int | None, expected: int | None) -> bool:
    """DynamoDB's ``attribute_not_exists(pk)`` (expected None) or ``version = :expected``."""
    return stored is None if expected is None else stored == expected


def _add(row: CountsRow | None, write: CountsAdd) -> CountsRow:
    before = row or CountsRow(Counts())
    total = {k: v + write.delta.as_dict()[k] for k, v in before.counts.as_dict().items()}
    return CountsRow(Counts(**total), before.first_day or write.day)


if TYPE_CHECKING:  # mypy proves the class meets the contract the services take
    _conforms: Store = InMemoryEventStore()
