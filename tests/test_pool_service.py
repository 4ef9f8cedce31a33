"""Pool and Issues commands on the in-memory store: one append (one transaction) each, the
counts row, reserve, the cleaning claim. What DynamoDB makes of an append (one
TransactWriteItems, the sparse index key) is in tests/test_store.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from gip.domain.envelope import Cause
from gip.domain.pool import AVAILABLE, CLEANING, DEREGISTERED, QUARANTINED, RESERVED, Counts
from gip.errors import ConcurrencyConflict, IllegalTransition, InvalidEvent, NotFound
from gip.services.projection import Projections
from gip.store.protocols import AccountPut, CountsAdd

C = Cause("corr", "test")


@pytest.fixture
def core(memory_core: SimpleNamespace) -> SimpleNamespace:
    return memory_core


def register(core: SimpleNamespace, n: int) -> list[str]:
    ids = [f"{i + 100000000000:012d}" for i in range(n)]
    for aid in ids:
        core.pool.register(aid, role_arn=f"arn:aws:iam::{aid}:role/p", source="manual", cause=C)
    return ids


WRITES = ("append", "put_row", "delete_row", "put_counts", "take_claim", "extend_claim")


def store_writes(monkeypatch: pytest.MonkeyPatch, core: SimpleNamespace) -> list[tuple[str, list]]:
    """Every write through the store seam: (method, the rows an append carried)."""
    calls: list[tuple[str, list]] = []
    for name in WRITES:
        original = getattr(core.store, name)

        def spy(*args: object, _name: str = name, _original=original, **kwargs: object) -> object:
            calls.append((_name, list(kwargs.get("rows", ()))))
            return _original(*args, **kwargs)

        monkeypatch.setattr(core.store, name, spy)
    return calls


def test_register_is_idempotent_and_counts(core: SimpleNamespace) -> None:
    (aid,) = register(core, 1)
    again = core.pool.register(aid, role_arn=f"arn:aws:iam::{aid}:role/p", source="reconcile", cause=C)
    assert again is None
    assert len(core.store.read(f"account-{aid}")) == 1
    assert core.pool.counts() == Counts(usable=1, registered=1)


def test_each_command_is_one_transaction(core: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    (aid,) = register(core, 1)
    calls = store_writes(monkeypatch, core)
    lease = core.pool.reserve(issue="issue-o/r#1", worker="w", cause=C)
    core.pool.release(aid, lease_id=lease.lease_id, cause=C)
    assert [name for name, _ in calls] == ["append", "append"]  # nothing else writes


def test_reserve_and_release_never_touch_the_counts_row(core: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    register(core, 1)
    before = core.store.counts_row()
    calls = store_writes(monkeypatch, core)
    lease = core.pool.reserve(issue="issue-o/r#1", worker="w", cause=C)
    core.pool.release(lease.account_id, lease_id=lease.lease_id, cause=C)
    rows = [row for _, appended in calls for row in appended]
    assert [type(r) for r in rows] == [AccountPut, AccountPut]  # the account row only, no CountsAdd
    assert core.store.counts_row() == before


def test_lease_cycle_and_stale_release_refused(core: SimpleNamespace) -> None:
    (aid,) = register(core, 1)
    lease = core.pool.reserve(issue="issue-o/r#1", worker="w1", cause=C)
    assert lease is not None and core.pool.get(aid).status == RESERVED
    assert core.pool.reserve(issue="issue-o/r#2", worker="w2", cause=C) is None  # none free: None
    core.pool.time_out(aid, lease_id=lease.lease_id, cause=C)
    with pytest.raises(IllegalTransition, match="AccountReleased"):
        core.pool.release(aid, lease_id=lease.lease_id, cause=C)  # the stale worker's late release
    assert core.pool.get(aid).status == CLEANING
    assert len(core.store.read(f"account-{aid}")) == 3  # nothing written by the refusal
    core.pool.mark_cleaned(aid, lease_id=lease.lease_id, removed=["bucket/x"], cause=C)
    assert core.pool.get(aid).status == AVAILABLE


def test_quarantine_reinstate_deregister_update_counts(core: SimpleNamespace) -> None:
    a, b = register(core, 2)
    lease = core.pool.reserve(issue="issue-o/r#1", worker="w", cause=C)
    core.pool.release(lease.account_id, lease_id=lease.lease_id, cause=C)
    core.pool.quarantine(lease.account_id, reason="stack delete failed", attempts=3, cause=C)
    assert core.pool.get(lease.account_id).status == QUARANTINED
    assert core.pool.counts() == Counts(usable=1, registered=2, quarantined=1)
    other = b if lease.account_id == a else a
    assert core.pool.reserve(issue="issue-o/r#2", worker="w", cause=C).account_id == other
    core.pool.reinstate(lease.account_id, reason="fixed", cause=C)
    assert core.pool.counts() == Counts(usable=2, registered=2)
    gone = core.pool.deregister(other, reason="closed", cause=C)
    assert gone["data"]["issue"] == "issue-o/r#2" and gone["data"]["lease_id"]
    assert core.pool.get(other).status == DEREGISTERED
    assert core.pool.deregister(other, reason="closed", cause=C) is None
    assert core.pool.counts() == Counts(usable=1, registered=2, deregistered=1)
    assert Projections(core.store).verify() == []


def test_unknown_account_is_not_found(core: SimpleNamespace) -> None:
    with pytest.raises(NotFound):
        core.pool.release("999999999999", lease_id="x", cause=C)


def test_invalid_event_writes_nothing(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidEvent, match="role_arn"):
        core.pool.register("123456789012", role_arn="not-an-arn", source="manual", cause=C)
    assert core.pool.get("123456789012") is None and core.pool.counts() == Counts()


def test_reserve_reads_a_bounded_number_of_items(core: SimpleNamespace) -> None:
    register(core, 40)
    core.pool.rng = random.Random(7)
    core.pool.stats.items_read = 0
    for i in range(10):
        assert core.pool.reserve(issue=f"issue-o/r#{i}", worker="w", cause=C)
    assert core.pool.stats.items_read <= 10 * core.pool.candidates


def test_stale_leases_through_the_indexes(core: SimpleNamespace) -> None:
    register(core, 3)
    leases = [core.pool.reserve(issue=f"issue-o/r#{i}", worker="w", cause=C) for i in range(3)]
    now = datetime.now(UTC)
    core.pool.renew(leases[0].account_id, lease_id=leases[0].lease_id, cause=C)
    assert core.pool.stale_leases(now=now, hard_cap_seconds=3600) == []
    later = now + timedelta(seconds=core.pool.lease_seconds + 5)
    assert len(core.pool.stale_leases(now=later, hard_cap_seconds=3600)) == 3
    capped = core.pool.stale_leases(now=now + timedelta(seconds=60), hard_cap_seconds=30)
    assert {a.account_id for a in capped} == {lease.account_id for lease in leases}
    core.pool.release(leases[1].account_id, lease_id=leases[1].lease_id, cause=C)
    assert len(core.pool.stale_leases(now=later, hard_cap_seconds=3600)) == 2  # released: no lease


def test_receive_is_once_per_delivery_and_per_active_run(core: SimpleNamespace) -> None:
    data = dict(repo="o/r", number=5, title="t", labels=["needs-reproduction"], trigger="labeled",
                sender="bob", html_url="https://github.com/o/r/issues/5")
    first = core.issues.receive(delivery_id="d1", repo="o/r", number=5, data=data, cause=Cause("d1", "webhook"))
    assert first.appended and first.issue.run == 1
    assert core.issues.receive(delivery_id="d1", repo="o/r", number=5, data=data,
                               cause=Cause("d1", "webhook")).reason == "duplicate_delivery"
    assert core.issues.receive(delivery_id="d2", repo="o/r", number=5, data=data,
                               cause=Cause("d2", "webhook")).reason == "already_active"
    core.issues.cancel("o/r", 5, reason="closed", cause=Cause("d3", "webhook"))
    assert core.issues.receive(delivery_id="d1", repo="o/r", number=5, data=data,
                               cause=Cause("d1", "webhook")).reason == "duplicate_delivery"
    second = core.issues.receive(delivery_id="d4", repo="o/r", number=5, data=data, cause=Cause("d4", "webhook"))
    assert second.appended and second.issue.run == 2
    assert [e["type"] for e in core.store.read("issue-o/r#5")] == ["IssueReceived", "IssueSkipped", "IssueReceived"]
    assert Projections(core.store).verify() == []


def _cleaning(core: SimpleNamespace) -> tuple[str, str]:
    (aid,) = register(core, 1)
    lease = core.pool.reserve(issue="issue-o/r#1", worker="w", cause=C)
    core.pool.release(aid, lease_id=lease.lease_id, cause=C)
    return aid, lease.lease_id


def test_only_one_cleaning_claim_at_a_time_and_it_lapses(core: SimpleNamespace) -> None:
    aid, _ = _cleaning(core)
    state = core.pool.get(aid)
    first = core.pool.claim_cleaning(state, owner="a", seconds=60)
    assert first is not None and core.pool.claim_holder(aid) == ("a", first.expires_at)
    assert core.pool.claim_cleaning(state, owner="b", seconds=60) is None
    later = datetime.now(UTC) + timedelta(seconds=61)
    core.pool.clock = lambda: later
    assert core.pool.claim_cleaning(state, owner="b", seconds=60) is not None
    assert core.pool.claim_holder(aid)[0] == "b"


def test_claims_are_refused_outside_cleaning(core: SimpleNamespace) -> None:
    (aid,) = register(core, 1)
    assert core.pool.claim_cleaning(core.pool.get(aid), owner="a", seconds=60) is None


def test_third_failure_quarantines_in_the_same_transaction(core: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    aid, lease_id = _cleaning(core)
    for attempt in (1, 2, 3):
        claim = core.pool.claim_cleaning(core.pool.get(aid), owner=f"w{attempt}", seconds=60)
        calls = store_writes(monkeypatch, core)
        events = core.pool.cleanup_failed(claim, error="boom", residue=["s3:bucket/b"], cause=C, quarantine_after=3)
        assert [name for name, _ in calls] == ["append"]
        assert [type(r) for r in calls[0][1]] == ([AccountPut, CountsAdd] if attempt == 3 else [AccountPut])
        assert events[0]["data"] == {"lease_id": lease_id, "attempt": attempt, "error": "boom",
                                     "residue": ["s3:bucket/b"]}
        monkeypatch.undo()
    assert [e["type"] for e in events] == ["AccountCleanupFailed", "AccountQuarantined"]
    assert events[1]["data"]["attempts"] == 3
    state = core.pool.get(aid)
    assert (state.status, state.cleanup_failures) == (QUARANTINED, 3)
    assert core.pool.counts() == Counts(usable=0, registered=1, quarantined=1)
    assert core.pool.claim_holder(aid) == (None, None)  # the outcome's row write ended the claim
    assert Projections(core.store).verify() == []


def test_outcome_needs_the_claim_still_held(core: SimpleNamespace) -> None:
    aid, lease_id = _cleaning(core)
    claim = core.pool.claim_cleaning(core.pool.get(aid), owner="a", seconds=60)
    later = datetime.now(UTC) + timedelta(seconds=61)
    core.pool.clock = lambda: later
    assert core.pool.claim_cleaning(core.pool.get(aid), owner="b", seconds=60) is not None
    with pytest.raises(ConcurrencyConflict):
        core.pool.mark_cleaned(aid, lease_id=lease_id, removed=[], cause=C, claim=claim)
    assert core.pool.get(aid).status == CLEANING


def test_cleanup_failed_schema_names_a_bad_field(core: SimpleNamespace) -> None:
    from gip.domain import schemas
    from gip.domain.envelope import new_event

    def failed(**data: object) -> dict:
        return {**new_event("AccountCleanupFailed", stream="account-123456789012", data=dict(data), cause=C),
                "version": 2}

    schemas.validate(failed(lease_id="L", attempt=1, error="boom", residue=["s3:bucket/b"]))
    with pytest.raises(InvalidEvent, match="data/attempt"):
        schemas.validate(failed(lease_id="L", attempt=0, error="boom", residue=[]))
    with pytest.raises(InvalidEvent, match="data/residue"):
        schemas.validate(failed(lease_id="L", attempt=1, error="boom", residue="s3"))


def test_a_renewed_claim_keeps_others_out_and_a_lost_one_cannot_be_renewed(core: SimpleNamespace) -> None:
    aid, _ = _cleaning(core)
    start = datetime.now(UTC)
    core.pool.clock = lambda: start
    claim = core.pool.claim_cleaning(core.pool.get(aid), owner="a", seconds=60)
    core.pool.clock = lambda: start + timedelta(seconds=50)
    assert core.pool.renew_claim(claim, seconds=60)
    core.pool.clock = lambda: start + timedelta(seconds=70)  # past the first expiry, not the renewed one
    assert core.pool.claim_cleaning(core.pool.get(aid), owner="b", seconds=60) is None
    core.pool.clock = lambda: start + timedelta(seconds=111)
    assert core.pool.claim_cleaning(core.pool.get(aid), owner="b", seconds=60) is not None
    assert not core.pool.renew_claim(claim, seconds=60)
