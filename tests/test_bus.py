"""The one PutEvents batcher: both request limits, resending only failed entries, what failed."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from gip.adapters.bus import MAX_REQUEST_BYTES, Failed, batches, entry_size, put_events


def entry(n: int, *, pad: int = 0) -> dict[str, Any]:
    return {"Source": "gip", "DetailType": "T", "Detail": f'{{"n":{n},"pad":"{"x" * pad}"}}',
            "EventBusName": "gip-bus"}


def number(e: dict[str, Any]) -> int:
    return int(e["Detail"].split(",")[0].split(":")[1])


class FakeEvents:
    """Records every request; ``fail[n]`` = how many times entry n is refused; ``raise_on`` = calls that raise."""

    def __init__(self, fail: dict[int, int] | None = None, raise_on: set[int] | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail = dict(fail or {})
        self.raise_on = raise_on or set()

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([number(e) for e in Entries])
        if len(self.calls) - 1 in self.raise_on:
            raise ClientError({"Error": {"Code": "InternalException", "Message": "x"}}, "PutEvents")
        results: list[dict[str, Any]] = []
        for e in Entries:
            n = number(e)
            if self.fail.get(n, 0) > 0:
                self.fail[n] -= 1
                results.append({"ErrorCode": "ThrottlingException"})
            else:
                results.append({"EventId": f"id-{n}"})
        return {"Entries": results}


def test_size_counts_time_source_type_detail_bus_and_resources() -> None:
    e = {"Source": "ab", "DetailType": "cd", "Detail": "é", "EventBusName": "b", "Resources": ["r1"]}
    assert entry_size(e) == 14 + 2 + 2 + 2 + 1 + 2


def test_requests_hold_at_most_ten_entries_and_stay_under_256_kb() -> None:
    small = [len(r) for r in batches(entry(i) for i in range(23))]
    assert small == [10, 10, 3]
    big = list(batches(entry(i, pad=100_000) for i in range(5)))
    assert [len(r) for r in big] == [2, 2, 1]
    assert all(sum(entry_size(e) for _, e in r) < MAX_REQUEST_BYTES for r in big)


def test_only_failed_entries_are_resent_with_backoff() -> None:
    client, sleeps = FakeEvents(fail={2: 1, 4: 2}), []
    assert put_events(client, [entry(i) for i in range(6)], sleep=sleeps.append) == []
    assert client.calls == [[0, 1, 2, 3, 4, 5], [2, 4], [4]]
    assert sleeps == [0.2, 0.4]


def test_what_keeps_failing_is_reported_by_position_and_code() -> None:
    client, sleeps = FakeEvents(fail={3: 99}), []
    failed = put_events(client, [entry(i) for i in range(12)], sleep=sleeps.append, max_attempts=2)
    assert failed == [Failed(3, "ThrottlingException")]
    assert client.calls == [list(range(10)), [3], [10, 11]]  # later requests still go
    assert sleeps == [0.2]


def test_stop_at_failure_sends_nothing_after_a_failed_request() -> None:
    client = FakeEvents(fail={3: 99})
    failed = put_events(client, [entry(i) for i in range(12)], sleep=lambda _: None, max_attempts=2,
                        stop_at_failure=True)
    assert failed == [Failed(3, "ThrottlingException"), Failed(10, "NotSent"), Failed(11, "NotSent")]
    assert client.calls == [list(range(10)), [3]]


def test_a_raising_request_is_retried_and_reported_with_the_aws_code() -> None:
    client = FakeEvents(raise_on={0, 1})
    assert put_events(client, [entry(0)], sleep=lambda _: None, max_attempts=2) == [Failed(0, "InternalException")]
    client = FakeEvents(raise_on={0})
    assert put_events(client, [entry(0)], sleep=lambda _: None) == []


def test_a_missing_result_counts_as_failed() -> None:
    class Short(FakeEvents):
        def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            super().put_events(Entries=Entries)
            return {"Entries": []}

    assert put_events(Short(), [entry(0)], sleep=lambda _: None, max_attempts=1) == [Failed(0, "NoEventId")]


def test_an_entry_too_large_alone_is_reported_never_sent() -> None:
    client = FakeEvents()
    failed = put_events(client, [entry(0), entry(1, pad=MAX_REQUEST_BYTES), entry(2)], sleep=lambda _: None)
    assert failed == [Failed(1, "EntryTooLarge")]
    assert client.calls == [[0], [2]]
