"""One contract, two event stores: in-memory and DynamoDB (moto in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.domain.envelope import Cause, new_event
from gip.errors import ConcurrencyConflict, InvalidEvent
from gip.store.dynamodb import DynamoEventStore
from gip.store.memory import InMemoryEventStore
from tests.conftest import make_core

STREAM = "account-111122223333"
T0 = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)


def cleaned(i: int, at: datetime = T0, **extra: Any) -> dict:
    return new_event("AccountCleaned", stream=STREAM, data={"lease_id": f"L{i}", "removed": [], **extra},
                     cause=Cause(f"corr-{i % 3}", "test"), occurred_at=at)


class StoreContract:
    store: Any

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

    def test_old_versions_are_upcast_on_read_and_raw_on_request(self) -> None:
        v1 = new_event("IssueProcessingFailed", stream="issue-o/r#2", cause=Cause("c", "t"),
                       data={"run": 1, "error": "x", "retryable": True, "attempt": 1}, schema_version=1)
        self.store.append("issue-o/r#2", 0, [v1])
        assert self.store.read("issue-o/r#2")[0]["schema_version"] == 2
        assert self.store.read("issue-o/r#2", raw=True)[0]["schema_version"] == 1


class TestInMemoryStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _store(self) -> None:
        self.store = InMemoryEventStore()


class TestDynamoStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _store(self) -> Iterator[None]:
        with mock_aws():
            self.store = make_core().store
            yield

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

    def test_correlation_index_follows_one_delivery(self) -> None:
        self.store.append(STREAM, 0, [cleaned(i, T0 + timedelta(seconds=i)) for i in range(6)])
        got = list(self.store.read_correlation("corr-1"))
        assert [e["data"]["lease_id"] for e in got] == ["L1", "L4"]

    def test_items_carry_index_attributes(self) -> None:
        self.store.append(STREAM, 0, [cleaned(1)])
        item = boto3.client("dynamodb").get_item(TableName="test-events",
                                                 Key={"pk": {"S": STREAM}, "sk": {"N": "1"}})["Item"]
        assert item["day"]["S"] == "2026-03-01" and item["ts"]["S"].startswith("2026-03-01T23:59:00.000Z#")
        assert isinstance(self.store, DynamoEventStore)
