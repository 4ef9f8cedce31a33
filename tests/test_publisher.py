"""The outbox publisher: stream records -> PutEvents, batching, resends, partial failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.config import Settings
from gip.domain.envelope import Cause, dumps, new_event
from gip.services import publisher as publisher_service
from gip.services.publisher import MAX_REQUEST_BYTES, publish_records
from gip.store.dynamodb import DynamoEventStore
from gip.store.models import Tables, create_tables
from handlers import publisher
from tests.conftest import new_container

PREFIX = "gip-test"
BUS = f"{PREFIX}-bus"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "GIP_PREFIX": PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def envelope(number: int, *, type_: str = "IssueSkipped", pad: int = 0) -> dict[str, Any]:
    event = new_event(
        type_, stream=f"issue-octo-org/hello-world#{number}",
        data={"reason": "closed", "detail": "x" * pad}, cause=Cause(correlation_id=f"d-{number}", actor="test"),
    )
    return {**event, "version": 1}


def record(seq: int, image: dict[str, Any] | None, *, name: str = "INSERT") -> dict[str, Any]:
    ddb: dict[str, Any] = {"Keys": {"pk": {"S": f"k{seq}"}, "sk": {"N": "1"}}, "SequenceNumber": f"{seq:021d}",
                           "StreamViewType": "NEW_IMAGE"}
    if image is not None:
        ddb["NewImage"] = image
    return {"eventID": str(seq), "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": ddb}


def stored(seq: int, event: dict[str, Any]) -> dict[str, Any]:
    image = {"pk": {"S": event["stream"]}, "sk": {"N": str(event["version"])}, "type": {"S": event["type"]},
             "body": {"S": dumps(event)}}
    return record(seq, image)


def marker(seq: int) -> dict[str, Any]:
    return record(seq, {"pk": {"S": "delivery-abc"}, "sk": {"N": "0"}, "kind": {"S": "marker"}})


class FakeEvents:
    """An EventBridge client stand-in: ``fail[n]`` = how many times issue #n's entry fails."""

    def __init__(self, fail: dict[int, int] | None = None, raise_on: set[int] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = dict(fail or {})
        self.raise_on = raise_on or set()

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        call = len(self.calls)
        self.calls.append(Entries)
        if call in self.raise_on:
            raise ConnectionError("endpoint unreachable")
        results = []
        for entry in Entries:
            n = int(json.loads(entry["Detail"])["stream"].rsplit("#", 1)[1])
            if self.fail.get(n, 0) > 0:
                self.fail[n] -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                results.append({"EventId": f"e-{call}-{n}"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def publish(records: list[dict[str, Any]], client: Any, **kw: Any) -> list[str]:
    sleeps: list[float] = []
    answer = publish_records(records, client=client, bus_name=BUS, source=PREFIX, sleep=sleeps.append, **kw)
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def seqs(*numbers: int) -> list[str]:
    return [f"{n:021d}" for n in numbers]


# --- through moto: bus + rule -> SQS --------------------------------------------------------


@pytest.fixture
def bus() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        url = sqs.create_queue(QueueName="sink")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [PREFIX]}))
        events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "sink", "Arn": arn}])
        yield events, sqs, url


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


def test_stored_events_arrive_on_the_bus_with_source_type_and_envelope(bus: Any) -> None:
    events, sqs, url = bus
    first, second = envelope(1), envelope(2, type_="IssueSkipped")
    records = [stored(1, first), marker(2), stored(3, second)]
    assert publish(records, events) == []
    arrived = sorted(drain(sqs, url), key=lambda m: m["detail"]["data"]["reason"] + m["detail"]["stream"])
    assert [m["source"] for m in arrived] == [PREFIX, PREFIX]
    assert [m["detail-type"] for m in arrived] == ["IssueSkipped", "IssueSkipped"]
    assert [m["detail"] for m in arrived] == [first, second]


def test_items_written_by_the_store_are_published(bus: Any) -> None:
    """GIVEN an event appended with its delivery marker WHEN its items are published THEN it arrives once."""
    events, sqs, url = bus
    settings = Settings.from_env()
    tables = Tables.from_settings(settings)
    create_tables(tables)
    store = DynamoEventStore(tables)
    event = new_event("IssueSkipped", stream="issue-octo-org/hello-world#7", data={"reason": "closed"},
                      cause=Cause(correlation_id="d-7", actor="test"))
    marker_row = store.delivery_marker("d-7", occurred_at=event["occurred_at"])
    (written,) = store.append("issue-octo-org/hello-world#7", 0, [event], rows=[marker_row])
    # moto's in-process DynamoDB Streams API is not routed; the items scanned from the table have
    # the same attribute-value form the stream puts in NewImage.
    items = boto3.client("dynamodb").scan(TableName=settings.events_table)["Items"]
    items.sort(key=lambda item: int(item["sk"]["N"]))  # marker (sk 0) first, as written
    records = [record(seq, item) for seq, item in enumerate(items, start=1)]
    assert len(records) == 3  # the event, the delivery marker and the day index (skipped: no body)
    assert publish(records, events) == []
    (message,) = drain(sqs, url)
    assert message["detail-type"] == "IssueSkipped"
    assert message["detail"] == written


def test_handler_reads_settings_and_publishes(bus: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _events, sqs, url = bus
    new_container(monkeypatch, publisher)
    answer = publisher.handler({"Records": [stored(1, envelope(1))]}, None)
    assert answer == {"batchItemFailures": []}
    assert [m["detail-type"] for m in drain(sqs, url)] == ["IssueSkipped"]


# --- pure batching and failure reporting ----------------------------------------------------


def test_markers_modify_and_remove_records_are_never_published() -> None:
    client = FakeEvents()
    records = [marker(1), record(2, envelope_image(2), name="MODIFY"), record(3, None, name="REMOVE"),
               record(4, {"pk": {"S": "x"}})]
    assert publish(records, client) == []
    assert client.calls == []


def envelope_image(n: int) -> dict[str, Any]:
    return stored(n, envelope(n))["dynamodb"]["NewImage"]


def test_detail_is_the_stored_body_byte_for_byte() -> None:
    client = FakeEvents()
    rec = stored(1, envelope(1))
    publish([rec], client)
    (entry,) = client.calls[0]
    assert entry["Detail"] == rec["dynamodb"]["NewImage"]["body"]["S"]
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (PREFIX, "IssueSkipped", BUS)


def test_batches_hold_at_most_ten_entries() -> None:
    client = FakeEvents()
    assert publish([stored(i, envelope(i)) for i in range(1, 24)], client) == []
    assert [len(c) for c in client.calls] == [10, 10, 3]


def test_batches_stay_under_256_kb() -> None:
    client = FakeEvents()
    records = [stored(i, envelope(i, pad=60_000)) for i in range(1, 10)]
    assert publish(records, client) == []
    assert len(client.calls) == 3
    for call in client.calls:
        assert sum(publisher_service.entry_size(e) for e in call) <= MAX_REQUEST_BYTES


def test_only_failed_entries_are_resent() -> None:
    client = FakeEvents(fail={2: 1, 4: 1})
    assert publish([stored(i, envelope(i)) for i in range(1, 6)], client) == []
    assert len(client.calls) == 2
    resent = [json.loads(e["Detail"])["stream"] for e in client.calls[1]]
    assert resent == ["issue-octo-org/hello-world#2", "issue-octo-org/hello-world#4"]


def test_persistent_failure_reports_that_record_and_every_later_one() -> None:
    client = FakeEvents(fail={2: 99})
    records = [stored(i, envelope(i)) for i in range(1, 15)]  # batches of 10 and 4
    failures = publish(records, client, max_attempts=3)
    assert failures == seqs(*range(2, 15))
    assert len(client.calls) == 3  # the second batch is not sent once the first failed


def test_failure_in_a_later_batch_keeps_earlier_batches_published() -> None:
    client = FakeEvents(fail={13: 3})
    records = [stored(i, envelope(i)) for i in range(1, 15)]
    assert publish(records, client, max_attempts=3) == seqs(*range(13, 15))


def test_a_raising_client_is_retried_then_reported() -> None:
    client = FakeEvents(raise_on={0})
    assert publish([stored(1, envelope(1))], client) == []
    assert len(client.calls) == 2
    client = FakeEvents(raise_on={0, 1, 2})
    assert publish([marker(1), stored(2, envelope(2))], client) == seqs(2)


def test_a_missing_result_entry_counts_as_failed() -> None:
    class Short(FakeEvents):
        def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            super().put_events(Entries=Entries)
            return {"FailedEntryCount": 0, "Entries": []}

    assert publish([stored(1, envelope(1))], Short(), max_attempts=2) == seqs(1)


def test_unreadable_body_is_reported_not_dropped_and_earlier_records_go_out() -> None:
    client = FakeEvents()
    bad = record(2, {"pk": {"S": "issue-x/y#1"}, "body": {"S": "{not json"}})
    failures = publish([stored(1, envelope(1)), bad, stored(3, envelope(3))], client)
    assert failures == seqs(2, 3)
    assert [len(c) for c in client.calls] == [1]


def test_entry_over_the_size_limit_is_reported() -> None:
    client = FakeEvents()
    assert publish([stored(1, envelope(1, pad=MAX_REQUEST_BYTES))], client) == seqs(1)
    assert client.calls == []


# --- end to end over a moto server: webhook -> table -> stream -> publisher -> bus -> SQS ---


@pytest.mark.server
def test_webhook_to_bus_end_to_end_over_moto_server(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN the tables, bus and a rule to SQS on a moto server
    WHEN the same labeled delivery comes twice, then a ping, and the publisher gets the stream
    THEN exactly one IssueReceived reaches the bus, the stored envelope, and no marker."""
    from gip.domain.delivery import signature_for
    from gip.domain.qualify import Rules
    from gip.services import webhook as webhook_service
    from tests.conftest import make_core

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("GIP_PREFIX", "e2e")
    new_container(monkeypatch, publisher)
    core = make_core(moto_server, prefix="e2e")
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="e2e-bus")
    url = sqs.create_queue(QueueName="e2e-sink")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="received", EventBusName="e2e-bus",
                    EventPattern=json.dumps({"source": ["e2e"], "detail-type": ["IssueReceived"]}))
    events.put_targets(Rule="received", EventBusName="e2e-bus", Targets=[{"Id": "sink", "Arn": arn}])

    doc = json.loads((Path(__file__).parent / "events/wh_issues_labeled.json").read_text())
    body = json.dumps(doc["payload"]).encode()
    headers = dict(doc["headers"], **{"X-Hub-Signature-256": signature_for(body, "s3cret")})
    ping = json.loads((Path(__file__).parent / "events/wh_ping.json").read_text())
    ping_body = json.dumps(ping["payload"]).encode()
    ping_headers = dict(ping["headers"], **{"X-Hub-Signature-256": signature_for(ping_body, "s3cret")})
    rules = Rules(("needs-reproduction",))
    answers = [
        webhook_service.handle(webhook_service.http_event(h, b), rules=rules, secrets=("s3cret",), max_bytes=1 << 20,
                       issues=lambda: core.issues)["statusCode"]
        for h, b in ((headers, body), (headers, body), (ping_headers, ping_body))
    ]
    assert answers == [202, 202, 200]

    streams = boto3.client("dynamodbstreams")
    stream_arn = boto3.client("dynamodb").describe_table(TableName="e2e-events")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it)["Records"]
    assert sorted(r["dynamodb"]["Keys"]["pk"]["S"] for r in records) == [
        "delivery-5b8e9a20-16b1-11ef-9d1e-7f0c3b2a1e02", "issue-octo-org/hello-world#42", "log-days"]
    assert publisher.handler({"Records": records}) == {"batchItemFailures": []}

    (message,) = drain(sqs, url)
    (stored_event,) = core.store.read("issue-octo-org/hello-world#42")
    assert (message["source"], message["detail-type"]) == ("e2e", "IssueReceived")
    assert message["detail"] == stored_event


# --- metrics: the published events are counted, once, by what they say -----------------------


def issue_event(number: int, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    event = new_event(type_, stream=f"issue-octo-org/hello-world#{number}", data=data,
                      cause=Cause(correlation_id=f"d-{number}", actor="test"))
    return {**event, "version": 2}


PROCESSED = {"run": 1, "verdict": "reproduced", "exit_code": 3, "duration_s": 4.5, "result_uri": "s3://b/k"}
FAILED = {"run": 1, "error": "processor_error: boom", "retryable": False, "attempt": 1}


def test_published_events_are_counted_and_the_retried_tail_is_not() -> None:
    points: list[Any] = []
    records = [stored(1, issue_event(1, "IssueProcessed", PROCESSED)), stored(2, envelope(2)),  # IssueSkipped
               stored(3, issue_event(3, "IssueProcessingFailed", FAILED))]
    failed = publish(records, FakeEvents(fail={3: 99}), metrics=points.extend)
    assert failed == seqs(3)  # left for the stream to bring back: counted when it is published
    assert [(p.name, p.value, p.dimensions) for p in points] == [
        ("IssuesProcessed", 1.0, (("Verdict", "reproduced"),)), ("ProcessingSeconds", 4.5, ()),
        ("IssuesSkipped", 1.0, ())]


def test_a_metrics_failure_never_fails_the_batch() -> None:
    def broken(points: Any) -> None:
        raise RuntimeError("stdout closed")

    assert publish([stored(1, envelope(1))], FakeEvents(), metrics=broken) == []


def test_handler_prints_emf_with_namespace_names_units_and_dimensions(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(publisher, "_service", lambda: (Settings.from_env(), FakeEvents()))
    records = [stored(1, issue_event(1, "IssueProcessed", PROCESSED)),
               stored(2, issue_event(2, "IssueProcessingFailed", FAILED))]
    assert publisher.handler({"Records": records}, None) == {"batchItemFailures": []}
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    by_dims = {tuple(b["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): b for b in blobs}
    assert set(by_dims) == {("Prefix", "Verdict"), ("Prefix",), ("Prefix", "Retryable")}
    for blob in blobs:
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "GitHubIssueProcessor" and blob["Prefix"] == PREFIX
    processed = by_dims[("Prefix", "Verdict")]
    assert processed["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "IssuesProcessed", "Unit": "Count"}]
    assert (processed["Verdict"], processed["IssuesProcessed"]) == ("reproduced", [1.0])
    assert by_dims[("Prefix",)]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ProcessingSeconds", "Unit": "Seconds"}]
    assert by_dims[("Prefix",)]["ProcessingSeconds"] == [4.5]
    failures = by_dims[("Prefix", "Retryable")]
    assert (failures["Retryable"], failures["IssueFailures"]) == ("false", [1.0])
