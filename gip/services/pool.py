"""Pool commands. Each is ONE store transaction: the event, plus the account's projection row
conditioned on its stored version, plus (for the rare commands that change how many accounts
are usable) the O(1) counts row. Reserve and release never touch the counts row, so they never
contend on it.

The transition itself is checked by the pure reducer (:func:`gip.domain.pool.evolve`) before
anything is sent; the version condition makes the check hold at write time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gip.config import Settings
from gip.domain.envelope import Cause, Envelope, account_stream, iso, new_event, utcnow
from gip.domain.pool import (
    AVAILABLE,
    CLEANING,
    DEREGISTERED,
    Account,
    Counts,
    counts_delta,
    evolve,
)
from gip.errors import ConcurrencyConflict, IllegalTransition, NotFound
from gip.store.protocols import AccountPut, CountsAdd, RowWrite, Store

if TYPE_CHECKING:
    from gip.store.models import Tables


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


@dataclass(frozen=True)
class Claim:
    """A held cleaning claim: ``owner`` alone may record this cleanup's outcome until ``expires_at``."""

    account_id: str
    owner: str
    expires_at: str
    state: Account  # the state the claim was taken on (a claim does not change the version)


@dataclass
class PoolStats:
    """Counters for benchmarks: conflicts, items read through the status index, reserves."""

    reserves: int = 0
    conflicts: int = 0
    items_read: int = 0
    empty: int = 0
    contended: int = 0


EMPTY, CONTENDED = "empty", "contended"  # Pool.last_miss


@dataclass(frozen=True)
class ReserveTrace:
    """What the latest ``reserve()`` saw, for its caller's one log line (nothing is read for
    it): how many AVAILABLE rows each round's sample of the status index held, and the races
    lost (account, the conflict's detail)."""

    sampled: tuple[int, ...] = ()
    lost: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        rounds = ", ".join(str(n) for n in self.sampled) or "none"
        text = f"{len(self.sampled)} sample(s) of the status index saw {rounds} AVAILABLE"
        if self.lost:
            text += "; lost the race for " + ", ".join(f"{account} ({why})" for account, why in self.lost)
        return text


@dataclass
class Pool:
    """The account pool's command side. Build once per container."""

    store: Store
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    lease_seconds: int = 900
    candidates: int = 3
    max_rounds: int = 3
    # After this many lost races in one call, give up (None) and let the caller back off with
    # jitter: in an overloaded pool, spreading retries in time beats hammering the same rows.
    max_conflicts: int = 2
    stats: PoolStats = field(default_factory=PoolStats)
    # Why the latest reserve() gave None: EMPTY (no AVAILABLE account read) or CONTENDED (lost
    # races while some were free). The caller waits long for the one, briefly for the other.
    last_miss: str = field(default="", compare=False)
    last_trace: ReserveTrace = field(default_factory=ReserveTrace, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, tables: Tables | None = None) -> Pool:
        """The composition root: the DynamoDB store for ``settings``."""
        from gip.store.dynamodb import DynamoEventStore
        from gip.store.models import Tables

        store = DynamoEventStore(tables or Tables.from_settings(settings))
        return cls(store=store, lease_seconds=settings.lease_seconds)

    # --- reading -------------------------------------------------------------------------
    def get(self, account_id: str) -> Account | None:
        """The account's projection row (consistent read), or None."""
        return self.store.account(account_id)

    def accounts(self) -> list[Account]:
        """Every account row (a scan of the projection table: for operators, not hot paths)."""
        return sorted(self.store.accounts(), key=lambda a: a.account_id)

    def counts(self) -> Counts:
        """The O(1) counts row."""
        row = self.store.counts_row()
        return row.counts if row else Counts()

    def first_day(self) -> str | None:
        """The UTC day of the first registration: where a full replay of the log starts."""
        row = self.store.counts_row()
        return row.first_day if row else None

    def stale_leases(self, *, now: datetime, hard_cap_seconds: int) -> list[Account]:
        """Leases past ``expires_at`` or older than the hard cap, through the sparse indexes only."""
        found = {a.account_id: a for a in self.store.leases_expiring_before(iso(now))}
        cap = iso(now - timedelta(seconds=hard_cap_seconds))
        found.update((a.account_id, a) for a in self.store.leases_reserved_before(cap))
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
        sampled: list[int] = []
        lost: list[tuple[str, str]] = []
        for _ in range(self.max_rounds):
            read = self._candidates()
            sampled.append(len(read))
            self.last_trace = ReserveTrace(tuple(sampled), tuple(lost))
            # The status index is a GSI, eventually consistent: an account this call just lost
            # may still read AVAILABLE there for a moment. Never race for it twice.
            taken = {account for account, _ in lost}
            candidates = [c for c in read if c.account_id not in taken]
            if read and not candidates:  # only accounts just lost: stale, or a race still going on
                return self._missed(CONTENDED)
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
            except (ConcurrencyConflict, IllegalTransition) as exc:
                self.stats.conflicts += 1
                lost.append((state.account_id, _why(exc)))
                self.last_trace = ReserveTrace(tuple(sampled), tuple(lost))
                if len(lost) >= self.max_conflicts:
                    return self._missed(CONTENDED)
                continue
            return Lease(state.account_id, lease_id, state.role_arn, issue, worker,
                         event["occurred_at"], expires, event)
        return self._missed(EMPTY)  # none AVAILABLE (any race lost before was for the last ones)

    def _missed(self, why: str) -> Lease | None:
        """No lease, and why (``last_miss``, counted in ``stats``)."""
        if why == CONTENDED:
            self.stats.contended += 1
        else:
            self.stats.empty += 1
        self.last_miss = why
        return None

    def _candidates(self) -> list[Account]:
        rows = self.store.sample_accounts(AVAILABLE, pivot=self.rng.random(), limit=self.candidates)
        self.stats.items_read += len(rows)
        return rows

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

    def claim_cleaning(self, expected: Account, *, owner: str, seconds: int) -> Claim | None:
        """Take the single-owner cleaning claim on a CLEANING account (a conditional update of
        its row, no event). None when another cleaner holds an unexpired claim or the row moved
        past ``expected``. The claim expires so that a crashed cleaner never wedges the account."""
        now = self.clock()
        expires = iso(now + timedelta(seconds=seconds))
        if not self.store.take_claim(expected.account_id, version=expected.version, status=CLEANING,
                                     owner=owner, now=iso(now), expires_at=expires):
            return None
        return Claim(expected.account_id, owner, expires, expected)

    def renew_claim(self, claim: Claim, *, seconds: int) -> bool:
        """Push a held claim's expiry out (the cleaner's heartbeat). False if it is no longer ours."""
        return self.store.extend_claim(claim.account_id, version=claim.state.version, owner=claim.owner,
                                       expires_at=iso(self.clock() + timedelta(seconds=seconds)))

    def claim_holder(self, account_id: str) -> tuple[str | None, str | None]:
        """``(cleaning_by, claim_expires_at)`` of the row: for logs and back-off timing."""
        return self.store.claim_holder(account_id)

    def mark_cleaned(self, account_id: str, *, lease_id: str | None, removed: list[str],
                     cause: Cause, claim: Claim | None = None) -> Envelope:
        """CLEANING → AVAILABLE. With ``claim``, only while that claim is still ours."""
        data = {"lease_id": lease_id, "removed": list(removed)}
        if claim is None:
            return self._apply(account_id, "AccountCleaned", data, cause)
        return self._apply_all(account_id, [("AccountCleaned", data)], cause, expected=claim.state,
                               owner=claim.owner)[0]

    def cleanup_failed(self, claim: Claim, *, error: str, residue: list[str], cause: Cause,
                       quarantine_after: int) -> list[Envelope]:
        """Record one failed attempt (``AccountCleanupFailed``; its number is folded from the log)
        and, on the ``quarantine_after``-th in a row, ``AccountQuarantined`` in the same transaction."""
        state = claim.state
        attempt = state.cleanup_failures + 1
        changes: list[tuple[str, Mapping[str, object]]] = [("AccountCleanupFailed", {
            "lease_id": state.cleaning_lease, "attempt": attempt, "error": error[:1000] or "failed",
            "residue": [r[:300] for r in residue[:200]]})]
        if attempt >= quarantine_after:
            changes.append(("AccountQuarantined", {
                "reason": f"cleanup failed {attempt} times in a row: {error}"[:1000], "attempts": attempt,
                "lease_id": state.cleaning_lease}))
        return self._apply_all(claim.account_id, changes, cause, expected=state, owner=claim.owner)

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

    def _apply(self, account_id: str, type_: str, data: Mapping[str, object], cause: Cause, *,
               expected: Account | str | None = "read") -> Envelope:
        return self._apply_all(account_id, [(type_, data)], cause, expected=expected)[0]

    def _apply_all(self, account_id: str, changes: list[tuple[str, Mapping[str, object]]], cause: Cause, *,
                   expected: Account | str | None = "read", owner: str | None = None) -> list[Envelope]:
        """Append ``changes`` as consecutive events with the row (and counts) in ONE transaction.
        ``owner``: the row's cleaning claim must still be held by that owner."""
        state = self.get(account_id) if expected == "read" else expected
        assert not isinstance(state, str)
        stream = account_stream(account_id)
        version = state.version if state else 0
        events, after = [], state
        for offset, (type_, data) in enumerate(changes, start=1):
            event = new_event(type_, stream=stream, data=dict(data), cause=cause, occurred_at=self.clock())
            after = evolve(after, {**event, "version": version + offset})  # type: ignore[typeddict-item]
            events.append(event)
        assert after is not None
        # Every transition leaves or enters AVAILABLE, so a fresh random key each time keeps the
        # status index's order random without ever reading the old key.
        rows: list[RowWrite] = [AccountPut(after, self.rng.random(), state.version if state else None,
                                           owner=owner)]
        delta = counts_delta(state, after)
        if any(delta.as_dict().values()):
            rows.append(CountsAdd(delta, events[0]["occurred_at"][:10]))
        return self.store.append(stream, version, events, rows=rows)


def _why(exc: ConcurrencyConflict | IllegalTransition) -> str:
    """A lost race in a few words: the conflict's detail (e.g. "stream is at version 4"), or
    the state the account turned out to be in."""
    if isinstance(exc, IllegalTransition):
        return f"it is {exc.state}"
    return exc.detail or "conflict"
