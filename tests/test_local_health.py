"""Local mode's honest health (issue 14 §2, §3): the stream poller mirrors the mapping's retry
limit and on-failure destination, and ``/healthz`` says ``degraded`` with the reasons."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from gip.local import health
from gip.local.lambdas import Function
from gip.local.streams import StreamPoller, failure_record


def clients(endpoint: str) -> Callable[[str], Any]:
    return lambda name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1")


def streamed_table(ddb: Any, name: str) -> dict[str, Any]:
    """A table keyed by ``pk`` whose stream carries new images; its description."""
    return dict(ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"])


def test_ready_when_everything_is_in_bounds() -> None:
    assert health.assess(lag_s=1.0, parked=0, dlq={"issue": 0}, live_workers=2, configured_workers=2) == ("ready", [])


def test_each_bound_broken_is_one_reason() -> None:
    status, reasons = health.assess(lag_s=95.0, parked=2, dlq={"issue": 0, "publisher": 2, "notifier": 1},
                                    live_workers=1, configured_workers=3)
    assert status == "degraded"
    assert reasons == [
        "publisher lag 95s (the oldest event not yet on the bus; bound 30s)",
        "2 record(s) parked after failing (in the publisher DLQ)",
        "dead-letter queue notifier holds 1 message(s)",
        "dead-letter queue publisher holds 2 message(s)",
        "1 of 3 worker(s) alive",
    ]
    doc = health.document(accounts={"AVAILABLE": 3}, queues={}, dlq={"publisher": 2}, lag_s=0.0, parked=2,
                          last_error="boom", live_workers=3, configured_workers=3)
    assert doc["status"] == "degraded" and doc["publisher"] == {"lag_s": 0.0, "parked": 2, "last_error": "boom"}
    assert doc["workers"] == {"live": 3, "configured": 3}


def test_the_failure_record_has_lambdas_on_failure_shape() -> None:
    record = {"dynamodb": {"SequenceNumber": "42", "ApproximateCreationDateTime": 1_700_000_000.0}}
    doc = failure_record(record, shard_id="s-1", function_arn="arn:f", stream_arn="arn:s", attempts=3, error="x")
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    info = doc["DDBStreamBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "s-1", "42", "42", 1)
    assert info["approximateArrivalOfFirstRecord"].startswith("2023-11-14T22:13:20")


@pytest.mark.server
@pytest.mark.parametrize("whole_batch", [False, True])
def test_a_record_that_keeps_failing_is_parked_and_the_rest_flow(moto_server: str, whole_batch: bool) -> None:
    """``whole_batch``: the function fails the whole batch whenever the bad record is in it (as
    the publisher does when moto's PutEvents fails): bisecting isolates it, nothing innocent is parked."""
    client = clients(moto_server)
    ddb, sqs = client("dynamodb"), client("sqs")
    name = f"health-events-{whole_batch}".lower()
    table = streamed_table(ddb, name)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    delivered: list[str] = []
    calls = {"n": 0}

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        calls["n"] += 1
        keys = [r["dynamodb"]["NewImage"]["pk"]["S"] for r in event["Records"]]
        if whole_batch and "bad" in keys:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}
        failures = []
        for record in event["Records"]:
            pk = record["dynamodb"]["NewImage"]["pk"]["S"]
            if pk == "bad":  # a target that can never take this one
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                break
            delivered.append(pk)
        return {"batchItemFailures": failures}

    for pk in ("a", "bad", "b"):
        ddb.put_item(TableName=name, Item={"pk": {"S": pk}})
    poller = StreamPoller(
        client=client("dynamodbstreams"), function=Function("pub", "arn:aws:lambda:us-east-1:1:function:pub", "x.y"),
        handler=handler, stream_arn=table["LatestStreamArn"], region="us-east-1", batch_size=10,
        stop=threading.Event(), on_event=lambda _e: None, retry_s=0.0, max_retries=2,
        park=lambda doc: sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(doc)))
    for _ in range(12):
        poller.poll_once()
    assert delivered == ["a", "b"]  # the bad one did not hold up the rest
    assert poller.parked == 1 and poller.lag_s == 0.0
    assert "reported record" in poller.last_error
    (message,) = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    parked = json.loads(message["Body"])
    assert parked["requestContext"]["approximateInvokeCount"] == 3  # the first try and 2 retries
    assert parked["DDBStreamBatchInfo"]["streamArn"] == table["LatestStreamArn"]
    # [a, bad, b] fails at bad (or at a, for the whole batch): halve from there until bad is
    # alone, then the first try and two retries; the third failure parks it and b goes on
    assert calls["n"] == (1 + 1 + 1 + 3 + 1 if whole_batch else 1 + 3 + 1)


@pytest.mark.server
def test_without_a_retry_limit_the_poller_keeps_the_record_and_reports_lag(moto_server: str) -> None:
    client = clients(moto_server)
    ddb = client("dynamodb")
    table = streamed_table(ddb, "health-stuck")
    ddb.put_item(TableName="health-stuck", Item={"pk": {"S": "x"}})

    def broken(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
        raise RuntimeError("the bus is down")

    poller = StreamPoller(
        client=client("dynamodbstreams"), function=Function("pub", "arn:f", "x.y"), handler=broken,
        stream_arn=table["LatestStreamArn"], region="us-east-1", batch_size=10, stop=threading.Event(),
        on_event=lambda _e: None, retry_s=0.0)
    for _ in range(3):
        poller.poll_once()
    assert poller.parked == 0 and poller.lag_s > 0.0
    assert poller.last_error == "RuntimeError: the bus is down"


@pytest.mark.server
def test_a_record_after_a_cancelled_transaction_is_still_read(moto_server: str) -> None:
    """moto restores a table from its backup when a transaction is cancelled (a lost race, a
    duplicate delivery): a new stream shard, so an iterator kept from an earlier read would read
    the discarded one for ever. The poller asks for a fresh iterator on every poll
    (docs/local.md); reusing an empty read's iterator to save that request lost every later
    record (tried in session 6)."""
    client = clients(moto_server)
    ddb = client("dynamodb")
    table = streamed_table(ddb, "health-cancel")
    delivered: list[str] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        delivered.extend(r["dynamodb"]["NewImage"]["pk"]["S"] for r in event["Records"])
        return {"batchItemFailures": []}

    poller = StreamPoller(
        client=client("dynamodbstreams"), function=Function("pub", "arn:f", "x.y"), handler=handler,
        stream_arn=table["LatestStreamArn"], region="us-east-1", batch_size=10, stop=threading.Event(),
        on_event=lambda _e: None, retry_s=0.0)
    ddb.put_item(TableName="health-cancel", Item={"pk": {"S": "first"}})
    assert poller.poll_once() and delivered == ["first"]
    assert not poller.poll_once()  # idle
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[{"Put": {
            "TableName": "health-cancel", "Item": {"pk": {"S": "first"}}, "ConditionExpression": "attribute_not_exists(pk)"}}])
    assert not poller.poll_once()
    ddb.put_item(TableName="health-cancel", Item={"pk": {"S": "after"}})
    assert poller.poll_once() and delivered == ["first", "after"]
