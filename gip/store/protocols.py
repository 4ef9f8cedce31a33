"""The store's two contracts, storage-neutral (no pynamodb type crosses them).

:class:`EventStore`: ``append(stream, expected_version, events)`` writes versions
``expected_version + 1 …``, each version once; events are validated against ``schemas/`` before
anything is sent. Commands that also change projection rows pass :data:`RowWrite` items, written
in the **same** transaction: all or nothing, every condition checked before anything is written.

:class:`ProjectionStore`: the projection rows (accounts, issues, the counts row, delivery
markers, the cleaning claim) read by key or index, and the conditional writes ``replay --repair``
makes outside an append.

Which failure raises what, in every implementation:

* an event's version is taken → :class:`~gip.errors.ConcurrencyConflict` (or a no-op when the
  same event ids are already there);
* a :class:`DeliveryMarker` exists → :class:`DuplicateDelivery` (checked first);
* an :class:`AccountPut` / :class:`IssuePut` condition fails → ConcurrencyConflict
  ("projection row changed");
* anything else (throttling, validation, an unattributable failure) →
  :class:`~gip.errors.StoreUnavailable`.

Two implementations pass one contract (tests/test_store.py):
:class:`~gip.store.dynamodb.DynamoEventStore` (pynamodb) and
:class:`~gip.store.memory.InMemoryEventStore`.

Two small contracts of operational rows beside the pool's (no events: they change no state the
log knows), each with a DynamoDB and an in-memory implementation under one contract
(tests/test_store_ops.py): :class:`RateGate`, the GitHub rate-limit gate every container shares
(:mod:`gip.store.dynamo_ops`, :mod:`gip.store.memory_ops`), and :class:`RedeliveryMarks`, the
redelivery sweep's high-water marks and hook list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeAlias

from gip.domain import schemas
from gip.domain.envelope import Envelope
from gip.domain.issue import Issue
from gip.domain.pool import Account, Counts
from gip.errors import GipError


class DuplicateDelivery(GipError):
    """This X-GitHub-Delivery was already appended."""

    def __init__(self, delivery_id: str) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"delivery {delivery_id} was already recorded")


@dataclass(frozen=True)
class AccountPut:
    """Replace an account's row with ``account`` (every attribute: nothing lingers, the cleaning
    claim included). ``expected_version`` None: the row must not exist yet. ``owner``: the row's
    cleaning claim must also be held by that owner."""

    account: Account
    rand: float  # the status index's sort key: a fresh random number keeps its order random
    expected_version: int | None
    owner: str | None = None


@dataclass(frozen=True)
class IssuePut:
    """Replace an issue's row (key ``issue.stream``), conditioned like :class:`AccountPut`."""

    issue: Issue
    expected_version: int | None


@dataclass(frozen=True)
class CountsAdd:
    """Add ``delta`` to the counts row (no condition: it never contends by design) and set its
    ``first_day`` to ``day`` unless it has one."""

    delta: Counts
    day: str


@dataclass(frozen=True)
class DeliveryMarker:
    """The idempotency marker of one X-GitHub-Delivery: must not exist yet."""

    delivery_id: str
    occurred_at: str


RowWrite: TypeAlias = AccountPut | IssuePut | CountsAdd | DeliveryMarker


@dataclass(frozen=True)
class CountsRow:
    """The stored counts row: the counts and the UTC day of the first registration."""

    counts: Counts
    first_day: str | None = None


class EventStore(Protocol):
    def append(
        self, stream: str, expected_version: int, events: Sequence[Envelope], *,
        rows: Sequence[RowWrite] = (),
    ) -> list[Envelope]: ...

    def read(self, stream: str, *, after: int = 0, raw: bool = False) -> list[Envelope]: ...

    def read_window(
        self, since: datetime, until: datetime, *, raw: bool = False
    ) -> Iterator[Envelope]: ...

    def read_correlation(self, correlation_id: str, *, raw: bool = False) -> Iterator[Envelope]: ...

    def log_days(self) -> list[str]:
        """The UTC days (``YYYY-MM-DD``) that hold events, ascending: the day index, so a time
        window costs one read per day with events, not per calendar day. Empty for a log written
        before the index existed (then :meth:`read_window` reads every day, as it did)."""
        ...

    def note_oversized(self, delivery_id: str, *, event: str, at: str) -> None:
        """Record that a signed delivery was refused for its size (item ``oversized-<id>``,
        not an event: it changes no state), so the redelivery sweep can tell it apart."""
        ...


class ProjectionStore(Protocol):
    # --- accounts (consistent reads by key; index reads are eventually consistent) ---------
    def account(self, account_id: str) -> Account | None: ...

    def accounts(self) -> list[Account]:
        """Every account row, in no particular order (a scan: operators, not hot paths)."""
        ...

    def sample_accounts(self, status: str, *, pivot: float, limit: int) -> list[Account]:
        """Up to ``limit`` rows in ``status`` from ``pivot`` on in the random order, wrapping
        round to the start."""
        ...

    def leases_expiring_before(self, at: str) -> list[Account]:
        """Leased rows whose ``expires_at`` < ``at`` (a sparse index)."""
        ...

    def leases_reserved_before(self, at: str) -> list[Account]:
        """Leased rows whose ``reserved_at`` < ``at`` (a sparse index)."""
        ...

    def counts_row(self) -> CountsRow | None: ...

    # --- the cleaning claim: operational, on the account row, never folded from the log -----
    def take_claim(self, account_id: str, *, version: int, status: str, owner: str, now: str,
                   expires_at: str) -> bool:
        """Set the claim if the row is at ``version`` and ``status`` and holds no claim that
        is unexpired at ``now``. False when refused."""
        ...

    def extend_claim(self, account_id: str, *, version: int, owner: str, expires_at: str) -> bool:
        """Move the claim's expiry if ``owner`` still holds it at ``version``. False if not."""
        ...

    def claim_holder(self, account_id: str) -> tuple[str | None, str | None]:
        """``(owner, expires_at)`` of the row's claim."""
        ...

    # --- issues and delivery markers -----------------------------------------------------------
    def issue(self, stream: str) -> Issue | None: ...

    def issues(self) -> list[Issue]: ...

    def issue_and_delivery(self, stream: str, delivery_id: str) -> tuple[Issue | None, bool]:
        """The issue row and whether the delivery's marker exists, in one consistent read."""
        ...

    # --- repair: single conditional writes outside an append -------------------------------
    def put_row(self, write: AccountPut | IssuePut) -> bool:
        """The write alone; False if its condition failed."""
        ...

    def delete_row(self, kind: Literal["account", "issue"], key: str, *, expected_version: int) -> bool:
        """Delete an account (key: the account id) or issue (key: the stream) row if it is still
        at ``expected_version``; False if not."""
        ...

    def put_counts(self, row: CountsRow, *, expected: CountsRow | None) -> bool:
        """Replace the counts row if its counts are still ``expected`` (None: it must not exist)."""
        ...

    # --- reconcile's strikes: one versioned item beside the pool rows -----------------------
    def strikes(self) -> tuple[dict[str, int], int]:
        """The stored strikes and their version (0: none stored yet)."""
        ...

    def save_strikes(self, strikes: Mapping[str, int], *, expected_version: int, at: str) -> bool:
        """Store ``strikes`` at ``expected_version + 1`` if they are still at ``expected_version``."""
        ...


@dataclass(frozen=True)
class GateState:
    """One rate key's gate: no request before ``blocked_until`` (epoch s); ``strikes``
    consecutive limits; the deployment's next mutation not before ``next_write``."""

    blocked_until: float = 0.0
    strikes: int = 0
    next_write: float = 0.0


class RateGate(Protocol):
    """The GitHub rate-limit state per rate key (:mod:`gip.adapters.github.ratelimit`). Reads
    are consistent: a block written by one container stops the next request of every other."""

    def state(self, key: str) -> GateState: ...

    def block(self, key: str, until: float, strikes: int) -> None:
        """Block ``key`` until ``until`` (never shortens a later block) and store ``strikes``."""
        ...

    def clear_strikes(self, key: str) -> None: ...

    def claim_write(self, key: str, *, now: float, interval: float) -> float:
        """Reserve the next write slot, ``interval`` after the last one claimed (by anyone) and
        not before ``now``; returns its time (wait until then, then write)."""
        ...


class RedeliveryMarks(Protocol):
    """The redelivery sweep's rows: a high-water mark (a delivery id) per hook, and the hook
    list the deploy stores."""

    def get(self, hook: str) -> int | None:
        """The hook's mark (consistent read); None before the first sweep."""
        ...

    def advance(self, hook: str, mark: int) -> None:
        """Raise the mark to ``mark``; a higher one already stored (a faster sweep) is kept."""
        ...

    def hooks(self) -> list[str]: ...

    def set_hooks(self, hooks: Sequence[str]) -> None: ...


class Store(EventStore, ProjectionStore, Protocol):
    """What the services take: the log and its projections, written together."""


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


def days_to_read(since: datetime, until: datetime, indexed: Sequence[str]) -> Iterator[str]:
    """The days of the window worth a query: those in the day index, and every day before the
    index's first (history written before the index existed; all days when there is no index)."""
    known = set(indexed)
    first = min(known) if known else None
    return (d for d in days(since, until) if first is None or d < first or d in known)


def finish(event: Envelope, raw: bool) -> Envelope:
    return event if raw else schemas.upcast(event)
