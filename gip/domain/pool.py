"""The account pool, as a pure fold of account events. No boto3 here.

``evolve(state, event) -> state`` is the one reducer used by the live path (commands check a
transition by evolving), by ``replay --as-of`` and by ``--verify``. Illegal transitions raise
:class:`IllegalTransition` and nothing is written.

    (none) ─Registered─▶ AVAILABLE ─Reserved─▶ RESERVED ─LeaseRenewed─▶ RESERVED
    RESERVED ─Released / TimedOut─▶ CLEANING ─Cleaned─▶ AVAILABLE
    CLEANING ─CleanupFailed─▶ CLEANING (``cleanup_failures`` + 1; Cleaned resets it)
    CLEANING ─Quarantined─▶ QUARANTINED ─Reinstated─▶ CLEANING
    any ─Deregistered─▶ DEREGISTERED ─Registered─▶ AVAILABLE (rejoins via StackSet / reconcile)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gip.domain.envelope import Envelope
from gip.errors import IllegalTransition

AVAILABLE = "AVAILABLE"
RESERVED = "RESERVED"
CLEANING = "CLEANING"
QUARANTINED = "QUARANTINED"
DEREGISTERED = "DEREGISTERED"
STATUSES = (AVAILABLE, RESERVED, CLEANING, QUARANTINED, DEREGISTERED)
USABLE = frozenset({AVAILABLE, RESERVED, CLEANING})


@dataclass(frozen=True)
class Account:
    """One account's folded state. ``version`` is the stream version it reflects."""

    account_id: str
    status: str
    version: int
    role_arn: str = ""
    source: str = ""
    registered_at: str = ""
    updated_at: str = ""
    lease_id: str | None = None
    issue: str | None = None
    worker: str | None = None
    reserved_at: str | None = None
    expires_at: str | None = None
    cleaning_lease: str | None = None
    reason: str | None = None
    cleanup_failures: int = 0  # consecutive failed cleanup attempts, folded from AccountCleanupFailed

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Counts:
    """The O(1) pool-counts row: only register/deregister/quarantine/reinstate change it."""

    usable: int = 0
    registered: int = 0
    quarantined: int = 0
    deregistered: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _refuse(state: Account | None, event: Envelope, reason: str = "") -> IllegalTransition:
    return IllegalTransition(event["stream"], state.status if state else "(none)", event["type"], reason)


def _lease_must_match(state: Account, event: Envelope) -> None:
    if event["data"].get("lease_id") != state.lease_id:
        raise _refuse(state, event, f"lease {event['data'].get('lease_id')} is not the current lease")


_LEASE_CLEARED = {"lease_id": None, "issue": None, "worker": None, "reserved_at": None,
                  "expires_at": None}


def _with(state: Account, changes: Mapping[str, object]) -> Account:
    """``dataclasses.replace`` without re-running ``__init__``: the fold's hot path (about 10x
    faster; ``bench/pool.py`` measures it). Safe because Account has no ``__post_init__``."""
    new = object.__new__(Account)
    object.__setattr__(new, "__dict__", {**state.__dict__, **changes})
    return new


def evolve(state: Account | None, event: Envelope) -> Account:
    """Apply one account event. Pure: returns a new state or raises IllegalTransition."""
    kind, data, at = event["type"], event["data"], event["occurred_at"]
    if kind == "AccountRegistered":
        # A deregistered account rejoins only through a confirmed path (issue 12 §1).
        if state is not None and state.status != DEREGISTERED:
            raise _refuse(state, event, "already registered")
        return Account(
            account_id=data["account_id"], status=AVAILABLE, version=event["version"],
            role_arn=data["role_arn"], source=data["source"], registered_at=at, updated_at=at,
        )
    if state is None:
        raise _refuse(state, event, "account is not registered")
    if state.status == DEREGISTERED:
        raise _refuse(state, event, "account is deregistered")
    base = {"version": event["version"], "updated_at": at}
    if kind == "AccountReserved":
        if state.status != AVAILABLE:
            raise _refuse(state, event)
        return _with(state, {**base, "status": RESERVED, "lease_id": data["lease_id"],
                             "issue": data["issue"], "worker": data["worker"], "reserved_at": at,
                             "expires_at": data["expires_at"], "cleaning_lease": None,
                             "reason": None})
    if kind == "AccountLeaseRenewed":
        if state.status != RESERVED:
            raise _refuse(state, event)
        _lease_must_match(state, event)
        return _with(state, {**base, "expires_at": data["expires_at"]})
    if kind in ("AccountReleased", "AccountTimedOut"):
        if state.status != RESERVED:
            raise _refuse(state, event)
        _lease_must_match(state, event)
        return _with(state, {**base, **_LEASE_CLEARED, "status": CLEANING,
                             "cleaning_lease": state.lease_id,
                             "reason": "timed_out" if kind == "AccountTimedOut" else None})
    if kind == "AccountCleaned":
        if state.status != CLEANING:
            raise _refuse(state, event)
        if data.get("lease_id") != state.cleaning_lease:
            raise _refuse(state, event, f"cleanup is for lease {state.cleaning_lease}")
        return _with(state, {**base, "status": AVAILABLE, "cleaning_lease": None, "reason": None,
                             "cleanup_failures": 0})
    if kind == "AccountCleanupFailed":
        if state.status != CLEANING:
            raise _refuse(state, event)
        if data.get("lease_id") != state.cleaning_lease:
            raise _refuse(state, event, f"cleanup is for lease {state.cleaning_lease}")
        return _with(state, {**base, "cleanup_failures": state.cleanup_failures + 1})
    if kind == "AccountQuarantined":
        if state.status != CLEANING:
            raise _refuse(state, event)
        return _with(state, {**base, "status": QUARANTINED, "reason": data["reason"]})
    if kind == "AccountReinstated":
        if state.status != QUARANTINED:
            raise _refuse(state, event)
        return _with(state, {**base, "status": CLEANING, "cleaning_lease": None, "reason": None,
                             "cleanup_failures": 0})
    if kind == "AccountDeregistered":
        return _with(state, {**base, **_LEASE_CLEARED, "status": DEREGISTERED,
                             "reason": data["reason"], "cleaning_lease": None})
    raise _refuse(state, event, "not an account event")


def counts_delta(before: Account | None, after: Account) -> Counts:
    """How one transition changes the counts row (zero for reserve/release/renew/clean)."""
    was_usable = before is not None and before.usable
    return Counts(
        usable=int(after.usable) - int(was_usable),
        registered=int(before is None),
        quarantined=int(after.status == QUARANTINED) - int(before is not None and before.status == QUARANTINED),
        deregistered=int(after.status == DEREGISTERED) - int(before is not None and before.status == DEREGISTERED),
    )


def fold(events: Iterable[Envelope], accounts: dict[str, Account] | None = None) -> dict[str, Account]:
    """Fold account events (any streams, each in version order) into states by account id."""
    out = dict(accounts or {})
    for event in events:
        stream = event["stream"]
        if stream.startswith("account-"):
            account_id = stream[8:]
            out[account_id] = evolve(out.get(account_id), event)
    return out


def count(accounts: Iterable[Account]) -> Counts:
    """The counts row as the log says it should be."""
    rows = list(accounts)
    return Counts(
        usable=sum(a.usable for a in rows),
        registered=len(rows),
        quarantined=sum(a.status == QUARANTINED for a in rows),
        deregistered=sum(a.status == DEREGISTERED for a in rows),
    )
