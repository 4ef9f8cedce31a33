"""Pool commands. Each is ONE TransactWriteItems: the event, plus the account's projection row
conditioned on its stored version, plus (for the rare commands that change how many accounts
are usable) the O(1) counts row. Reserve and release never touch the counts row, so they never
contend on it.

The transition itself is checked by the pure reducer (:func:`handlers.core.pool.evolve`) before
anything is sent; the version condition makes the check hold at write time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.core.config import Settings
from handlers.core.envelope import Cause, Envelope, account_stream, iso, new_event, utcnow
from handlers.core.errors import ConcurrencyConflict, IllegalTransition, NotFound
from handlers.core.models import Tables
from handlers.core.pool import (
    AVAILABLE,
    DEREGISTERED,
    Account,
    Counts,
    counts_delta,
    evolve,
)
from handlers.core.store import DynamoEventStore, RowWrite

COUNTS_PK = "counts"


@dataclass(frozen=True)
class Lease:
    """What ``reserve`` hands a worker."""

    account_id: str
    lease_id: str
    role_arn: str
    issue: str
    worker: str
    reserved_at: str
    expires_at: str
    event: Envelope


@dataclass
class PoolStats:
    """Counters for benchmarks: conflicts, items read through the status index, reserves."""

    reserves: int = 0
    conflicts: int = 0
    items_read: int = 0
    empty: int = 0
    contended: int = 0


@dataclass
class Pool:
    """The account pool's command side. Build once per container."""

    store: DynamoEventStore
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    lease_seconds: int = 900
    candidates: int = 3
    max_rounds: int = 3
    # After this many lost races in one call, give up (None) and let the caller back off with
    # jitter: in an overloaded pool, spreading retries in time beats hammering the same rows.
    max_conflicts: int = 2
    stats: PoolStats = field(default_factory=PoolStats)

    @classmethod
    def from_settings(cls, settings: Settings, tables: Tables | None = None, **kw: Any) -> Pool:
        store = DynamoEventStore(tables or Tables.from_settings(settings))
        return cls(store=store, lease_seconds=settings.lease_seconds, **kw)

    @property
    def model(self) -> Any:
        return self.store.tables.pool

    # --- reading -------------------------------------------------------------------------
    def get(self, account_id: str) -> Account | None:
        """The account's projection row (consistent read), or None."""
        try:
            row = self.model.get(account_stream(account_id), consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return account_from_row(row)

    def accounts(self) -> list[Account]:
        """Every account row (a scan of the projection table: for operators, not hot paths)."""
        rows = self.model.scan(self.model.pk.startswith("account-"))
        return sorted((account_from_row(r) for r in rows), key=lambda a: a.account_id)

    def counts(self) -> Counts:
        """The O(1) counts row."""
        try:
            row = self.model.get(COUNTS_PK, consistent_read=True)
        except self.model.DoesNotExist:
            return Counts()
        return Counts(usable=int(row.usable or 0), registered=int(row.registered or 0),
                      quarantined=int(row.quarantined or 0), deregistered=int(row.deregistered or 0))

    def first_day(self) -> str | None:
        """The UTC day of the first registration: where a full replay of the log starts."""
        try:
            return self.model.get(COUNTS_PK, consistent_read=True).first_day  # type: ignore[no-any-return]
        except self.model.DoesNotExist:
            return None

    def stale_leases(self, *, now: datetime, hard_cap_seconds: int) -> list[Account]:
        """Leases past ``expires_at`` or older than the hard cap, through the sparse indexes only."""
        found: dict[str, Account] = {}
        for row in self.model.by_expiry.query("L", self.model.expires_at < iso(now)):
            found[row.pk] = account_from_row(row)
        cap = iso(now - timedelta(seconds=hard_cap_seconds))
        for row in self.model.by_reserved.query("L", self.model.reserved_at < cap):
            found[row.pk] = account_from_row(row)
        return sorted(found.values(), key=lambda a: a.account_id)

    # --- commands ------------------------------------------------------------------------
    def register(self, account_id: str, *, role_arn: str, source: str, cause: Cause) -> Envelope | None:
        """Register an account as AVAILABLE (a DEREGISTERED one rejoins). Idempotent: None if
        it is already in the pool."""
        known = self.get(account_id)
        if known is not None and known.status != DEREGISTERED:
            return None
        try:
            return self._apply(account_id, "AccountRegistered",
                               {"account_id": account_id, "role_arn": role_arn, "source": source},
                               cause, expected=known)
        except ConcurrencyConflict:
            return None  # registered concurrently by another path: same outcome

    def reserve(self, *, issue: str, worker: str, cause: Cause) -> Lease | None:
        """Lease a random AVAILABLE account, or None when none is free (not an exception).

        Reads at most ``candidates`` items per round through the status index, whatever the
        pool size; on a lost race it reads again and tries another, up to ``max_conflicts`` races.
        """
        self.stats.reserves += 1
        lost = 0
        for _ in range(self.max_rounds):
            candidates = self._candidates()
            if not candidates:
                break
            # One random candidate per round: after a lost race the other candidates of that
            # read are likely stale too, so read afresh rather than race on them.
            state = self.rng.choice(candidates)
            lease_id = str(uuid.uuid4())
            expires = iso(self.clock() + timedelta(seconds=self.lease_seconds))
            data = {"lease_id": lease_id, "issue": issue, "worker": worker, "expires_at": expires}
            try:
                event = self._apply(state.account_id, "AccountReserved", data, cause, expected=state)
            except (ConcurrencyConflict, IllegalTransition):
                self.stats.conflicts += 1
                lost += 1
                if lost >= self.max_conflicts:
                    self.stats.contended += 1
                    return None
                continue
            return Lease(state.account_id, lease_id, state.role_arn, issue, worker,
                         event["occurred_at"], expires, event)
        self.stats.empty += 1
        return None

    def _candidates(self) -> list[Account]:
        pivot = self.rng.random()
        index, rand = self.model.by_status, self.model.rand
        rows = list(index.query(AVAILABLE, rand >= pivot, limit=self.candidates))
        if len(rows) < self.candidates:
            rows += list(index.query(AVAILABLE, rand < pivot, limit=self.candidates - len(rows)))
        self.stats.items_read += len(rows)
        return [account_from_row(r) for r in rows]

    def renew(self, account_id: str, *, lease_id: str, cause: Cause) -> Envelope:
        expires = iso(self.clock() + timedelta(seconds=self.lease_seconds))
        return self._apply(account_id, "AccountLeaseRenewed",
                           {"lease_id": lease_id, "expires_at": expires}, cause)

    def release(self, account_id: str, *, lease_id: str, cause: Cause) -> Envelope:
        """RESERVED → CLEANING, only for the current lease (a stale worker is refused)."""
        state = self._require(account_id)
        return self._apply(account_id, "AccountReleased",
                           {"lease_id": lease_id, "issue": state.issue or ""}, cause, expected=state)

    def time_out(self, account_id: str, *, lease_id: str, cause: Cause,
                 expected: Account | None = None) -> Envelope:
        state = expected or self._require(account_id)
        data = {"lease_id": lease_id, "issue": state.issue or "", "reserved_at": state.reserved_at or ""}
        return self._apply(account_id, "AccountTimedOut", data, cause, expected=state)

    def mark_cleaned(self, account_id: str, *, lease_id: str | None, removed: list[str],
                     cause: Cause) -> Envelope:
        return self._apply(account_id, "AccountCleaned",
                           {"lease_id": lease_id, "removed": list(removed)}, cause)

    def quarantine(self, account_id: str, *, reason: str, attempts: int, cause: Cause) -> Envelope:
        state = self._require(account_id)
        data = {"reason": reason, "attempts": attempts, "lease_id": state.cleaning_lease}
        return self._apply(account_id, "AccountQuarantined", data, cause, expected=state)

    def reinstate(self, account_id: str, *, reason: str, cause: Cause) -> Envelope:
        return self._apply(account_id, "AccountReinstated",
                           {"reason": reason, "operator": cause.actor}, cause)

    def deregister(self, account_id: str, *, reason: str, cause: Cause) -> Envelope | None:
        """Any state → DEREGISTERED. None if unknown or already deregistered. The event carries
        the lease that was cut short, if any, so its run can be failed-retryable."""
        state = self.get(account_id)
        if state is None or state.status == DEREGISTERED:
            return None
        data = {"reason": reason, "lease_id": state.lease_id, "issue": state.issue}
        return self._apply(account_id, "AccountDeregistered", data, cause, expected=state)

    # --- the one write path ----------------------------------------------------------------
    def _require(self, account_id: str) -> Account:
        state = self.get(account_id)
        if state is None:
            raise NotFound(f"account {account_id} is not registered")
        return state

    def _apply(self, account_id: str, type_: str, data: dict[str, Any], cause: Cause, *,
               expected: Account | str | None = "read") -> Envelope:
        state = self.get(account_id) if expected == "read" else expected
        assert not isinstance(state, str)
        stream = account_stream(account_id)
        version = state.version if state else 0
        event = new_event(type_, stream=stream, data=data, cause=cause, occurred_at=self.clock())
        after = evolve(state, {**event, "version": version + 1})  # type: ignore[typeddict-item]
        rows = [self._row_write(state, after)]
        delta = counts_delta(state, after)
        if any(delta.as_dict().values()):
            rows.append(self._counts_write(delta, event["occurred_at"][:10]))
        return self.store.append(stream, version, [event], rows=rows)[0]

    def _row_write(self, before: Account | None, after: Account) -> RowWrite:
        # Every transition leaves or enters AVAILABLE, so a fresh random key each time keeps the
        # status index's order random without ever reading the old key.
        row = row_from_account(self.model, after, rand=self.rng.random())
        m = self.model
        condition = m.pk.does_not_exist() if before is None else (m.version == before.version)
        return RowWrite(row, condition=condition, tag="row")

    def _counts_write(self, delta: Counts, day: str) -> RowWrite:
        m = self.model
        actions = [getattr(m, name).add(value) for name, value in delta.as_dict().items()]
        actions.append(m.first_day.set(m.first_day | day))
        return RowWrite(m(COUNTS_PK), kind="update", actions=actions, tag="counts")


def account_from_row(row: Any) -> Account:
    """Projection row → Account (the same shape the reducer produces)."""
    return Account(
        account_id=row.pk.removeprefix("account-"), status=row.status, version=int(row.version),
        role_arn=row.role_arn or "", source=row.source or "", registered_at=row.registered_at or "",
        updated_at=row.updated_at or "", lease_id=row.lease_id, issue=row.issue, worker=row.worker,
        reserved_at=row.reserved_at, expires_at=row.expires_at, cleaning_lease=row.cleaning_lease,
        reason=row.reason,
    )


def row_from_account(model: Any, account: Account, *, rand: float) -> Any:
    """Account → a full projection row (a put replaces every attribute, so nothing lingers)."""
    leased = "L" if account.lease_id else None
    return model(
        account_stream(account.account_id), version=account.version, status=account.status,
        rand=rand, leased=leased, expires_at=account.expires_at, reserved_at=account.reserved_at,
        lease_id=account.lease_id, cleaning_lease=account.cleaning_lease, issue=account.issue,
        worker=account.worker, role_arn=account.role_arn, source=account.source,
        reason=account.reason, registered_at=account.registered_at, updated_at=account.updated_at,
    )
