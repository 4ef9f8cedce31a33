"""The pure account reducer, with every legal and illegal transition. No AWS."""

from __future__ import annotations

from typing import Any

import pytest

from gip.domain.envelope import Envelope
from gip.domain.pool import (
    AVAILABLE,
    CLEANING,
    DEREGISTERED,
    QUARANTINED,
    RESERVED,
    Account,
    Counts,
    count,
    counts_delta,
    evolve,
    fold,
)
from gip.errors import IllegalTransition

ACCT = "123456789012"
STREAM = f"account-{ACCT}"


def ev(type_: str, version: int, **data: Any) -> Envelope:
    return Envelope(event_id=f"00000000-0000-4000-8000-{version:012d}", type=type_, schema_version=1,
                    stream=STREAM, version=version, occurred_at=f"2026-01-01T00:00:{version:02d}.000Z",
                    correlation_id="c", causation_id=None, actor="t", data=data)


REG = ev("AccountRegistered", 1, account_id=ACCT, role_arn=f"arn:aws:iam::{ACCT}:role/p", source="manual")


def reserved(lease: str = "L1") -> Account:
    return evolve(evolve(None, REG), ev("AccountReserved", 2, lease_id=lease, issue="issue-o/r#1",
                                        worker="w", expires_at="2026-01-01T00:15:00.000Z"))


def test_register_makes_an_available_account() -> None:
    state = evolve(None, REG)
    assert (state.status, state.version, state.account_id) == (AVAILABLE, 1, ACCT)
    assert state.usable


def test_full_lease_cycle_returns_to_available() -> None:
    s = reserved()
    assert (s.status, s.lease_id, s.reserved_at) == (RESERVED, "L1", "2026-01-01T00:00:02.000Z")
    s = evolve(s, ev("AccountLeaseRenewed", 3, lease_id="L1", expires_at="2026-01-01T00:30:00.000Z"))
    assert s.expires_at == "2026-01-01T00:30:00.000Z"
    s = evolve(s, ev("AccountReleased", 4, lease_id="L1", issue="issue-o/r#1"))
    assert (s.status, s.cleaning_lease, s.lease_id) == (CLEANING, "L1", None)
    s = evolve(s, ev("AccountCleaned", 5, lease_id="L1", removed=["stack/x"]))
    assert (s.status, s.version) == (AVAILABLE, 5)


def test_timeout_goes_to_cleaning_never_straight_to_available() -> None:
    s = evolve(reserved(), ev("AccountTimedOut", 3, lease_id="L1", issue="issue-o/r#1",
                              reserved_at="2026-01-01T00:00:02.000Z"))
    assert s.status == CLEANING and s.reason == "timed_out"


def test_quarantine_and_reinstate_go_through_cleaning() -> None:
    s = evolve(reserved(), ev("AccountReleased", 3, lease_id="L1", issue="issue-o/r#1"))
    s = evolve(s, ev("AccountQuarantined", 4, reason="cleanup failed", attempts=3))
    assert s.status == QUARANTINED and not s.usable
    s = evolve(s, ev("AccountReinstated", 5, reason="fixed by hand", operator="alice"))
    assert s.status == CLEANING
    s = evolve(s, ev("AccountCleaned", 6, lease_id=None, removed=[]))
    assert s.status == AVAILABLE


def test_deregister_is_terminal_and_ends_the_lease() -> None:
    s = evolve(reserved(), ev("AccountDeregistered", 3, reason="closed"))
    assert (s.status, s.lease_id) == (DEREGISTERED, None)
    with pytest.raises(IllegalTransition):
        evolve(s, ev("AccountCleaned", 4, lease_id=None, removed=[]))
    with pytest.raises(IllegalTransition):
        evolve(s, ev("AccountDeregistered", 4, reason="closed"))


def test_a_deregistered_account_rejoins_as_a_fresh_available_account() -> None:
    gone = evolve(reserved(), ev("AccountDeregistered", 3, reason="removed"))
    back = evolve(gone, ev("AccountRegistered", 4, account_id=gone.account_id, role_arn="arn:new", source="stackset"))
    assert (back.status, back.version, back.role_arn, back.source) == (AVAILABLE, 4, "arn:new", "stackset")
    assert (back.reason, back.lease_id) == (None, None)
    with pytest.raises(IllegalTransition):
        evolve(back, ev("AccountRegistered", 5, **REG["data"]))


ILLEGAL = [
    ("reserve twice", lambda: reserved(), ev("AccountReserved", 3, lease_id="L2", issue="issue-o/r#2",
                                              worker="w", expires_at="2026-01-01T00:15:00.000Z")),
    ("register twice", lambda: evolve(None, REG), ev("AccountRegistered", 2, **REG["data"])),
    ("release when available", lambda: evolve(None, REG), ev("AccountReleased", 2, lease_id="L1", issue="i")),
    ("release wrong lease", lambda: reserved(), ev("AccountReleased", 3, lease_id="L2", issue="i")),
    ("renew wrong lease", lambda: reserved(), ev("AccountLeaseRenewed", 3, lease_id="X", expires_at="x")),
    ("renew when available", lambda: evolve(None, REG), ev("AccountLeaseRenewed", 2, lease_id="L1", expires_at="x")),
    ("timeout when available", lambda: evolve(None, REG),
     ev("AccountTimedOut", 2, lease_id="L1", issue="i", reserved_at="x")),
    ("clean when reserved", lambda: reserved(), ev("AccountCleaned", 3, lease_id="L1", removed=[])),
    ("clean for another lease", lambda: evolve(reserved(), ev("AccountReleased", 3, lease_id="L1", issue="i")),
     ev("AccountCleaned", 4, lease_id="OLD", removed=[])),
    ("quarantine when available", lambda: evolve(None, REG), ev("AccountQuarantined", 2, reason="r", attempts=3)),
    ("reinstate when available", lambda: evolve(None, REG), ev("AccountReinstated", 2, reason="r", operator="o")),
    ("reserve unregistered", lambda: None, ev("AccountReserved", 1, lease_id="L", issue="i", worker="w", expires_at="x")),
    ("foreign event", lambda: evolve(None, REG), ev("IssueQueued", 2, run=1, sender="s", permission="write")),
]


@pytest.mark.parametrize(("name", "state", "event"), ILLEGAL, ids=[c[0] for c in ILLEGAL])
def test_illegal_transitions_are_refused(name: str, state: Any, event: Envelope) -> None:
    with pytest.raises(IllegalTransition) as info:
        evolve(state(), event)
    assert info.value.event_type == event["type"]
    assert STREAM in str(info.value)


def test_counts_delta_only_for_rare_commands() -> None:
    avail = evolve(None, REG)
    assert counts_delta(None, avail) == Counts(usable=1, registered=1)
    assert counts_delta(avail, reserved()) == Counts()  # reserve never touches counts
    cleaning = evolve(reserved(), ev("AccountReleased", 3, lease_id="L1", issue="i"))
    quarantined = evolve(cleaning, ev("AccountQuarantined", 4, reason="r", attempts=3))
    assert counts_delta(cleaning, quarantined) == Counts(usable=-1, quarantined=1)
    gone = evolve(quarantined, ev("AccountDeregistered", 5, reason="closed"))
    assert counts_delta(quarantined, gone) == Counts(quarantined=-1, deregistered=1)


def test_fold_and_count_agree_with_step_by_step() -> None:
    events = [REG, ev("AccountReserved", 2, lease_id="L1", issue="issue-o/r#1", worker="w",
                      expires_at="2026-01-01T00:15:00.000Z")]
    accounts = fold(events)
    assert accounts[ACCT] == reserved()
    assert count(accounts.values()) == Counts(usable=1, registered=1)


def cleaning(lease: str = "L1") -> Account:
    return evolve(reserved(lease), ev("AccountReleased", 3, lease_id=lease, issue="issue-o/r#1"))


def test_failed_cleanups_stay_cleaning_and_are_counted_until_cleaned() -> None:
    s = evolve(cleaning(), ev("AccountCleanupFailed", 4, lease_id="L1", attempt=1, error="x", residue=[]))
    s = evolve(s, ev("AccountCleanupFailed", 5, lease_id="L1", attempt=2, error="x", residue=["s3:bucket/b"]))
    assert (s.status, s.cleanup_failures, s.cleaning_lease) == (CLEANING, 2, "L1")
    assert s.usable
    s = evolve(s, ev("AccountCleaned", 6, lease_id="L1", removed=[]))
    assert (s.status, s.cleanup_failures) == (AVAILABLE, 0)


def test_quarantine_keeps_the_count_and_reinstate_starts_afresh() -> None:
    s = cleaning()
    for version in (4, 5, 6):
        s = evolve(s, ev("AccountCleanupFailed", version, lease_id="L1", attempt=version - 3, error="x", residue=[]))
    s = evolve(s, ev("AccountQuarantined", 7, reason="cleanup failed 3 times", attempts=3))
    assert (s.status, s.cleanup_failures) == (QUARANTINED, 3)
    s = evolve(s, ev("AccountReinstated", 8, reason="fixed", operator="alice"))
    assert (s.status, s.cleanup_failures) == (CLEANING, 0)


@pytest.mark.parametrize(("name", "state", "event"), [
    ("failed cleanup when available", lambda: evolve(None, REG),
     ev("AccountCleanupFailed", 2, lease_id=None, attempt=1, error="x", residue=[])),
    ("failed cleanup when reserved", lambda: reserved(),
     ev("AccountCleanupFailed", 3, lease_id="L1", attempt=1, error="x", residue=[])),
    ("failed cleanup for another lease", lambda: cleaning(),
     ev("AccountCleanupFailed", 4, lease_id="OLD", attempt=1, error="x", residue=[])),
], ids=["available", "reserved", "other lease"])
def test_failed_cleanup_is_refused_outside_this_cleaning(name: str, state: Any, event: Envelope) -> None:
    with pytest.raises(IllegalTransition):
        evolve(state(), event)
