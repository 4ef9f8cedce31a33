"""One contract, two stores: in-memory and DynamoDB (moto in-process). The log, projection rows
written in the same transaction, their conditions and errors, the counts row, delivery markers,
the indexes and the cleaning claim; then what is DynamoDB's own (paging, index attributes, one
TransactWriteItems per append)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.domain.envelope import Cause, new_event
from gip.domain.issue import Issue
from gip.domain.pool import Account, Counts
from gip.errors import ConcurrencyConflict, InvalidEvent
from gip.store import protocols as p
from gip.store.dynamodb import DynamoEventStore
from gip.store.memory import InMemoryEventStore
from gip.store.protocols import AccountPut, CountsAdd, CountsRow, IssuePut, Store
from tests.conftest import empty_tables

STREAM = "account-111122223333"
T0 = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)


def cleaned(i: int, at: datetime = T0, **extra: Any) -> dict:
    return new_event("AccountCleaned", stream=STREAM, data={"lease_id": f"L{i}", "removed": [], **extra},
                     cause=Cause(f"corr-{i % 3}", "test"), occurred_at=at)


def account(version: int = 1, status: str = "AVAILABLE", account_id: str = "111122223333", **kw: Any) -> Account:
    return Account(account_id=account_id, status=status, version=version,
                   role_arn=f"arn:aws:iam::{account_id}:role/r", source="manual", **kw)


def issue(version: int = 1, status: str = "RECEIVED", number: int = 1) -> Issue:
    return Issue(stream=f"issue-o/r#{number}", repo="o/r", number=number, status=status, version=version,
                 run=1, labels=("needs-reproduction",), title="ü ✓")


def received(number: int = 1) -> dict:
    return new_event("IssueReceived", stream=f"issue-o/r#{number}", cause=Cause("d1", "webhook"),
                     data={"repo": "o/r", "number": number, "title": "t", "labels": [], "trigger": "labeled",
                           "sender": "s", "html_url": "https://github.com/o/r/issues/1", "run": 1})


def dynamo_calls(store: Store) -> list[str]:
    """The DynamoDB operations ``store`` sends from now on, in order."""
    assert isinstance(store, DynamoEventStore)
    calls: list[str] = []
    conn = store.tables.connection
    original = conn.dispatch
    conn.dispatch = lambda op, kw: (calls.append(op), original(op, kw))[1]  # type: ignore[method-assign]
    return calls


class StoreContract:
    store: Store

    def test_append_numbers_versions_and_reads_back_exactly(self) -> None:
        written = self.store.append(STREAM, 0, [cleaned(1), cleaned(2)])
        assert [e["version"] for e in written] == [1, 2]
        assert self.store.read(STREAM) == written
        assert self.store.read(STREAM, after=1) == written[1:]

    def test_wrong_expected_version_names_stream_and_version(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)])
        with pytest.raises(ConcurrencyConflict) as info:
            self.store.append(STREAM, 0, [cleaned(2)])
        assert info.value.stream == STREAM and info.value.expected_version == 0
        assert STREAM in str(info.value) and "expected version 0" in str(info.value)

    def test_reappending_the_same_event_is_a_no_op(self) -> None:
        event = cleaned(1)
        first = self.store.append(STREAM, 0, [event])
        again = self.store.append(STREAM, 0, [event])
        assert again == first and len(self.store.read(STREAM)) == 1

    def test_invalid_event_writes_nothing(self) -> None:
        bad = cleaned(2)
        bad["data"] = {"lease_id": "x"}
        with pytest.raises(InvalidEvent, match="data/removed"):
            self.store.append(STREAM, 0, [cleaned(1), bad])
        assert self.store.read(STREAM) == []

    def test_floats_and_unicode_survive_exactly(self) -> None:
        event = new_event("IssueProcessed", stream="issue-o/r#1", cause=Cause("c", "t"),
                          data={"run": 1, "verdict": "reproduced", "exit_code": 1, "duration_s": 0.1 + 0.2,
                                "result_uri": "s3://b/ü", "log_tail": "naïve ✓"})
        self.store.append("issue-o/r#1", 0, [event])
        (back,) = self.store.read("issue-o/r#1")
        assert back["data"]["duration_s"] == 0.30000000000000004
        assert isinstance(back["data"]["exit_code"], int) and back["data"]["log_tail"] == "naïve ✓"

    def test_window_reads_across_days_in_time_order(self) -> None:
        self.store.append(STREAM, 0, [cleaned(i, T0 + timedelta(seconds=30 * i)) for i in range(6)])
        got = list(self.store.read_window(T0 + timedelta(seconds=30), T0 + timedelta(seconds=120)))
        assert [e["data"]["lease_id"] for e in got] == ["L1", "L2", "L3", "L4"]
        assert {e["occurred_at"][:10] for e in got} == {"2026-03-01", "2026-03-02"}

    def test_the_day_index_lists_the_days_with_events_and_a_long_window_still_reads_them(self) -> None:
        assert self.store.log_days() == []
        far = T0 + timedelta(days=400)
        self.store.append(STREAM, 0, [cleaned(i, T0 + timedelta(seconds=30 * i)) for i in range(4)])
        self.store.append(STREAM, 4, [cleaned(9, far)])
        assert self.store.log_days() == ["2026-03-01", "2026-03-02", far.date().isoformat()]
        got = list(self.store.read_window(T0 - timedelta(days=30), far + timedelta(days=3000)))
        assert [e["data"]["lease_id"] for e in got] == ["L0", "L1", "L2", "L3", "L9"]

    def test_old_versions_are_upcast_on_read_and_raw_on_request(self) -> None:
        v1 = new_event("IssueProcessingFailed", stream="issue-o/r#2", cause=Cause("c", "t"),
                       data={"run": 1, "error": "x", "retryable": True, "attempt": 1}, schema_version=1)
        self.store.append("issue-o/r#2", 0, [v1])
        assert self.store.read("issue-o/r#2")[0]["schema_version"] == 2
        assert self.store.read("issue-o/r#2", raw=True)[0]["schema_version"] == 1


    def test_correlation_reads_follow_one_delivery(self) -> None:
        self.store.append(STREAM, 0, [cleaned(i, T0 + timedelta(seconds=i)) for i in range(6)])
        got = list(self.store.read_correlation("corr-1"))
        assert [e["data"]["lease_id"] for e in got] == ["L1", "L4"]

    # --- projection rows in the append's transaction -----------------------------------------------
    def test_rows_are_written_with_the_events(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)], rows=[
            AccountPut(account(), 0.5, None), CountsAdd(Counts(usable=1, registered=1), "2026-03-01")])
        self.store.append(STREAM, 1, [cleaned(2)], rows=[
            AccountPut(account(2, "QUARANTINED", reason="r"), 0.2, 1), CountsAdd(Counts(usable=-1, quarantined=1), "2026-03-05")])
        assert self.store.account("111122223333") == account(2, "QUARANTINED", reason="r")
        assert self.store.account("999999999999") is None
        assert self.store.counts_row() == CountsRow(Counts(usable=0, registered=1, quarantined=1), "2026-03-01")
        assert self.store.accounts() == [account(2, "QUARANTINED", reason="r")]

    def test_a_failed_row_condition_is_a_conflict_and_writes_nothing(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)], rows=[AccountPut(account(), 0.5, None)])
        for expected in (None, 7):  # must-not-exist on an existing row; a stale version
            with pytest.raises(ConcurrencyConflict, match="projection row changed"):
                self.store.append(STREAM, 1, [cleaned(2)], rows=[
                    AccountPut(account(2, "RESERVED"), 0.1, expected), CountsAdd(Counts(usable=5), "2026-03-01")])
        assert len(self.store.read(STREAM)) == 1
        assert self.store.account("111122223333") == account() and self.store.counts_row() is None

    def test_a_taken_version_is_a_conflict_even_with_rows(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)], rows=[AccountPut(account(), 0.5, None)])
        with pytest.raises(ConcurrencyConflict, match="stream is at version 1"):
            self.store.append(STREAM, 0, [cleaned(9)], rows=[AccountPut(account(1, "RESERVED"), 0.1, 1)])
        assert self.store.account("111122223333") == account()

    def test_reappending_with_rows_is_a_no_op(self) -> None:
        event = cleaned(1)
        first = self.store.append(STREAM, 0, [event], rows=[AccountPut(account(), 0.5, None)])
        again = self.store.append(STREAM, 0, [event], rows=[AccountPut(account(1, "RESERVED"), 0.5, None)])
        assert again == first and self.store.account("111122223333") == account()

    def test_delivery_marker_is_once_and_wins_over_a_conflict(self) -> None:
        stream = "issue-o/r#1"
        assert self.store.issue_and_delivery(stream, "d1") == (None, False)
        self.store.append(stream, 0, [received()], rows=[IssuePut(issue(), None), p.DeliveryMarker("d1", iso_t0())])
        assert self.store.issue_and_delivery(stream, "d1") == (issue(), True)
        assert self.store.issue_and_delivery(stream, "d2") == (issue(), False)
        with pytest.raises(p.DuplicateDelivery) as info:  # also at a stale version: the marker is checked first
            self.store.append(stream, 0, [received()], rows=[IssuePut(issue(), None), p.DeliveryMarker("d1", iso_t0())])
        assert info.value.delivery_id == "d1"
        with pytest.raises(p.DuplicateDelivery):
            self.store.append("issue-o/r#2", 0, [received(2)],
                              rows=[IssuePut(issue(number=2), None), p.DeliveryMarker("d1", iso_t0())])
        assert self.store.read("issue-o/r#2") == [] and self.store.issue("issue-o/r#2") is None

    def test_issue_rows_round_trip(self) -> None:
        self.store.append("issue-o/r#1", 0, [received()], rows=[IssuePut(issue(), None)])
        with pytest.raises(ConcurrencyConflict, match="projection row changed"):
            self.store.append("issue-o/r#1", 1, [received()], rows=[IssuePut(issue(2, "QUEUED"), 0)])
        assert self.store.issue("issue-o/r#1") == issue() and self.store.issue("issue-o/r#9") is None
        assert self.store.issues() == [issue()]

    def test_an_owner_condition_needs_the_claim_and_the_put_ends_it(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)], rows=[AccountPut(account(1, "CLEANING"), 0.5, None)])
        with pytest.raises(ConcurrencyConflict):
            self.store.append(STREAM, 1, [cleaned(2)], rows=[AccountPut(account(2), 0.5, 1, owner="a")])
        assert self.store.take_claim("111122223333", version=1, status="CLEANING", owner="a",
                                     now="2026-03-01T00:00:00.000Z", expires_at="2026-03-01T00:01:00.000Z")
        with pytest.raises(ConcurrencyConflict):
            self.store.append(STREAM, 1, [cleaned(2)], rows=[AccountPut(account(2), 0.5, 1, owner="b")])
        self.store.append(STREAM, 1, [cleaned(2)], rows=[AccountPut(account(2), 0.5, 1, owner="a")])
        assert self.store.claim_holder("111122223333") == (None, None)

    # --- indexes and the claim ------------------------------------------------------------------
    def _accounts(self, *specs: tuple[str, str, float, dict[str, str]]) -> None:
        for n, (account_id, status, rand, extra) in enumerate(specs):
            state = account(1, status, account_id, **extra)
            self.store.append(f"account-{account_id}", 0, [cleaned(n)], rows=[AccountPut(state, rand, None)])

    def test_sample_reads_one_status_from_the_pivot_and_wraps(self) -> None:
        self._accounts(("100000000001", "AVAILABLE", 0.1, {}), ("100000000002", "AVAILABLE", 0.5, {}),
                       ("100000000003", "AVAILABLE", 0.9, {}), ("100000000004", "CLEANING", 0.6, {}))
        ids = lambda got: [a.account_id for a in got]  # noqa: E731
        assert ids(self.store.sample_accounts("AVAILABLE", pivot=0.4, limit=2)) == ["100000000002", "100000000003"]
        assert ids(self.store.sample_accounts("AVAILABLE", pivot=0.7, limit=2)) == ["100000000003", "100000000001"]
        assert len(self.store.sample_accounts("AVAILABLE", pivot=0.0, limit=10)) == 3
        assert self.store.sample_accounts("QUARANTINED", pivot=0.0, limit=10) == []

    def test_lease_indexes_hold_only_leased_rows(self) -> None:
        leased = {"lease_id": "L", "reserved_at": "2026-03-01T00:00:00.000Z", "expires_at": "2026-03-01T00:15:00.000Z"}
        self._accounts(("100000000001", "RESERVED", 0.1, leased), ("100000000002", "AVAILABLE", 0.5,
                       {"reserved_at": "2026-01-01T00:00:00.000Z", "expires_at": "2026-01-01T00:00:00.000Z"}))
        expiring = self.store.leases_expiring_before
        assert expiring("2026-03-01T00:15:00.000Z") == [] and len(expiring("2026-03-01T00:15:00.001Z")) == 1
        reserved = self.store.leases_reserved_before
        assert reserved("2026-03-01T00:00:00.000Z") == []
        assert [a.account_id for a in reserved("2026-03-02T00:00:00.000Z")] == ["100000000001"]

    def test_the_cleaning_claim_is_single_owner_and_lapses(self) -> None:
        self._accounts(("100000000001", "CLEANING", 0.1, {}))
        aid, t1, t2, t3 = "100000000001", "2026-03-01T00:01:00.000Z", "2026-03-01T00:02:00.000Z", "2026-03-01T00:03:00.000Z"
        take = self.store.take_claim
        assert not take(aid, version=2, status="CLEANING", owner="a", now=t1, expires_at=t2)  # stale version
        assert not take(aid, version=1, status="AVAILABLE", owner="a", now=t1, expires_at=t2)  # other status
        assert not take("100000000009", version=1, status="CLEANING", owner="a", now=t1, expires_at=t2)
        assert take(aid, version=1, status="CLEANING", owner="a", now=t1, expires_at=t2)
        assert not take(aid, version=1, status="CLEANING", owner="b", now=t1, expires_at=t3)  # held
        assert self.store.extend_claim(aid, version=1, owner="a", expires_at=t3)
        assert not self.store.extend_claim(aid, version=1, owner="b", expires_at=t3)
        assert not take(aid, version=1, status="CLEANING", owner="b", now=t2, expires_at=t3)  # renewed
        assert take(aid, version=1, status="CLEANING", owner="b", now="2026-03-01T00:03:00.001Z", expires_at="x")
        assert self.store.claim_holder(aid) == ("b", "x") and self.store.claim_holder("100000000009") == (None, None)

    # --- repair writes ------------------------------------------------------------------------------
    def test_repair_writes_are_conditioned_on_what_was_read(self) -> None:
        self._accounts(("100000000001", "AVAILABLE", 0.1, {}))
        assert not self.store.put_row(AccountPut(account(3, account_id="100000000001"), 0.2, None))
        assert not self.store.put_row(AccountPut(account(3, account_id="100000000001"), 0.2, 2))
        assert self.store.put_row(AccountPut(account(3, account_id="100000000001"), 0.2, 1))
        assert self.store.account("100000000001") == account(3, account_id="100000000001")
        assert self.store.put_row(IssuePut(issue(), None)) and not self.store.put_row(IssuePut(issue(), None))
        assert not self.store.delete_row("issue", "issue-o/r#1", expected_version=2)
        assert self.store.delete_row("issue", "issue-o/r#1", expected_version=1)
        assert self.store.issue("issue-o/r#1") is None
        assert not self.store.delete_row("account", "100000000001", expected_version=1)
        assert self.store.delete_row("account", "100000000001", expected_version=3)
        assert self.store.accounts() == []

    def test_counts_repair_is_conditioned_on_the_counts_read(self) -> None:
        want = CountsRow(Counts(usable=2, registered=2), "2026-03-01")
        assert not self.store.put_counts(want, expected=CountsRow(Counts()))  # there is no row yet
        assert self.store.put_counts(want, expected=None)
        assert not self.store.put_counts(CountsRow(Counts()), expected=None)
        self.store.append(STREAM, 0, [cleaned(1)], rows=[CountsAdd(Counts(quarantined=1), "2026-04-01")])
        assert not self.store.put_counts(CountsRow(Counts(), "2026-03-01"), expected=want)  # moved on
        moved = CountsRow(Counts(usable=2, registered=2, quarantined=1), "2026-03-01")
        assert self.store.counts_row() == moved
        assert self.store.put_counts(CountsRow(Counts(usable=1), "2026-03-01"), expected=moved)
        assert self.store.counts_row() == CountsRow(Counts(usable=1), "2026-03-01")

    def test_strikes_are_versioned_and_a_stale_save_is_refused(self) -> None:
        assert self.store.strikes() == ({}, 0)
        assert self.store.save_strikes({"register:1:": 1}, expected_version=0, at=iso_t0())
        assert not self.store.save_strikes({"register:1:": 5}, expected_version=0, at=iso_t0())
        assert self.store.save_strikes({"register:1:": 2, "x": 1}, expected_version=1, at=iso_t0())
        assert self.store.strikes() == ({"register:1:": 2, "x": 1}, 2)
        assert self.store.accounts() == [] and self.store.counts_row() is None  # beside the rows, not one


def iso_t0() -> str:
    return "2026-03-01T23:59:00.000Z"


class TestInMemoryStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _store(self) -> None:
        self.store = InMemoryEventStore()


class TestDynamoStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, shared_core: SimpleNamespace) -> None:
        self.store = empty_tables(shared_core, pool=True).store  # one moto and tables per module

    def test_pages_past_one_megabyte(self) -> None:
        big = "x" * 300_000  # 5 items > 1 MB: DynamoDB returns more than one page
        for n in range(5):
            event = new_event("IssueProcessed", stream=f"issue-o/r#{n + 1}", cause=Cause("c", "t"),
                              occurred_at=T0, data={"run": 1, "verdict": "reproduced", "exit_code": 1,
                                                    "duration_s": 1, "result_uri": "s3://b/k", "log_tail": big})
            self.store.append(f"issue-o/r#{n + 1}", 0, [event])
        client = boto3.client("dynamodb", region_name="us-east-1")
        page = client.query(TableName="test-events", IndexName="by-day",
                            KeyConditionExpression="#d = :d", ExpressionAttributeNames={"#d": "day"},
                            ExpressionAttributeValues={":d": {"S": "2026-03-01"}})
        assert "LastEvaluatedKey" in page  # the premise: one page is not enough
        got = list(self.store.read_window(T0 - timedelta(seconds=1), T0 + timedelta(seconds=1)))
        assert len(got) == 5 and all(len(e["data"]["log_tail"]) == 300_000 for e in got)

    def test_items_carry_index_attributes(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)])
        item = boto3.client("dynamodb").get_item(TableName="test-events",
                                                 Key={"pk": {"S": STREAM}, "sk": {"N": "1"}})["Item"]
        assert item["day"]["S"] == "2026-03-01" and item["ts"]["S"].startswith("2026-03-01T23:59:00.000Z#")
        assert isinstance(self.store, DynamoEventStore)

    def test_an_append_with_rows_is_one_transaction_and_a_lone_event_one_put(self) -> None:
        assert isinstance(self.store, DynamoEventStore)
        calls: list[str] = []
        conn = self.store.tables.connection
        original = conn.dispatch
        conn.dispatch = lambda op, kw: (calls.append(op), original(op, kw))[1]  # type: ignore[method-assign]
        self.store.append(STREAM, 0, [cleaned(1)])
        self.store.append(STREAM, 1, [cleaned(2)], rows=[AccountPut(account(), 0.5, None),
                                                         CountsAdd(Counts(usable=1), "2026-03-01")])
        # the first event of a day also puts the day in the day index, once per store instance
        assert calls == ["PutItem", "PutItem", "TransactWriteItems"]
        calls.clear()
        self.store.append(STREAM, 2, [cleaned(3)])
        assert calls == ["PutItem"]

    def test_a_lost_race_or_a_retry_is_told_by_the_cancellation_without_a_read(self) -> None:
        # Each event put returns the item it found (ALL_OLD), and the stream's own row its
        # version: a lost race (the pool's every conflict) and a retried append cost no Query.
        assert isinstance(self.store, DynamoEventStore)
        self.store.append(STREAM, 0, [cleaned(1)], rows=[AccountPut(account(), 0.5, None)])
        mine = [cleaned(2), cleaned(3)]
        first = self.store.append(STREAM, 1, mine, rows=[AccountPut(account(3), 0.5, 1),
                                                         CountsAdd(Counts(usable=1), "2026-03-01")])
        calls = dynamo_calls(self.store)
        with pytest.raises(ConcurrencyConflict, match=r"expected version 1 \(stream is at version 3\)"):
            self.store.append(STREAM, 1, [cleaned(9)], rows=[AccountPut(account(2, "RESERVED"), 0.1, 1)])
        assert calls == ["TransactWriteItems"]
        calls.clear()
        assert self.store.append(STREAM, 1, mine, rows=[AccountPut(account(3), 0.5, 1)]) == first
        assert calls == ["TransactWriteItems"]
        calls.clear()  # an issue stream: its row is the issue row
        self.store.append("issue-o/r#1", 0, [received()], rows=[IssuePut(issue(), None)])
        with pytest.raises(ConcurrencyConflict, match=r"stream is at version 1\)"):
            self.store.append("issue-o/r#1", 0, [received()], rows=[IssuePut(issue(), None)])
        assert [c for c in calls if c != "PutItem"] == ["TransactWriteItems"] * 2  # PutItem: a new day
        assert self.store.read(STREAM)[1:] == first and self.store.account("111122223333") == account(3)

    def test_a_conflict_the_cancellation_cannot_place_reads_the_stream(self) -> None:
        # the row's condition held (no old row returned): the stream's version needs a read
        assert isinstance(self.store, DynamoEventStore)
        self.store.append(STREAM, 0, [cleaned(1), cleaned(2)], rows=[AccountPut(account(2), 0.5, None)])
        calls = dynamo_calls(self.store)
        with pytest.raises(ConcurrencyConflict, match=r"stream is at version 2\)"):
            self.store.append(STREAM, 0, [cleaned(9)], rows=[AccountPut(account(1, "RESERVED"), 0.1, 2)])
        assert calls == ["TransactWriteItems", "Query"]

    def test_a_window_queries_only_the_days_that_hold_events(self) -> None:
        assert isinstance(self.store, DynamoEventStore)
        self.store.append(STREAM, 0, [cleaned(1)])
        self.store.append(STREAM, 1, [cleaned(2, T0 + timedelta(days=90))])
        queries: list[str] = []
        conn = self.store.tables.connection
        original = conn.dispatch

        def counting(op: str, kw: dict) -> Any:
            if op == "Query" and kw.get("IndexName") == "by-day":
                queries.append(kw["ExpressionAttributeValues"][":0"]["S"])
            return original(op, kw)

        conn.dispatch = counting  # type: ignore[method-assign]
        got = list(self.store.read_window(T0, datetime(2099, 1, 1, tzinfo=UTC)))
        assert len(got) == 2 and sorted(queries) == ["2026-03-01", "2026-05-30"]
        queries.clear()  # days before the index's first may hold history written before the index
        list(self.store.read_window(T0 - timedelta(days=2), T0))
        assert sorted(queries) == ["2026-02-27", "2026-02-28", "2026-03-01"]

    def test_a_log_from_before_the_day_index_is_still_read_day_by_day(self) -> None:
        assert isinstance(self.store, DynamoEventStore)
        self.store.append(STREAM, 0, [cleaned(1)])
        self.store.tables.events("log-days", 20260301).delete()  # as if written before the index
        self.store.append(STREAM, 1, [cleaned(2, T0 + timedelta(days=3))])
        fresh = DynamoEventStore(self.store.tables)
        got = list(fresh.read_window(T0 - timedelta(days=1), T0 + timedelta(days=4)))
        assert [e["data"]["lease_id"] for e in got] == ["L1", "L2"]

    def test_only_leased_rows_carry_the_sparse_index_key(self) -> None:
        leased = account(1, "RESERVED", "100000000001", lease_id="L", reserved_at="2026-03-01T00:00:00.000Z",
                         expires_at="2026-03-01T00:15:00.000Z")
        self.store.append("account-100000000001", 0, [cleaned(1)], rows=[AccountPut(leased, 0.1, None)])
        self.store.append(STREAM, 0, [cleaned(2)], rows=[AccountPut(account(), 0.2, None)])
        rows = boto3.client("dynamodb").scan(TableName="test-pool")["Items"]
        assert sorted(("leased" in r, r["pk"]["S"]) for r in rows) == [
            (False, "account-111122223333"), (True, "account-100000000001")]
