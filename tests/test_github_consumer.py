"""The SQS batch loop of the GitHub consumers: parsing, partial failures, the Lambda deadline."""

from __future__ import annotations

import json

import pytest

from gip.adapters.github.client import GitHubClient
from gip.adapters.github.consumer import envelope_from_record, run_batch
from gip.domain.envelope import envelope_from_sqs_body
from gip.errors import GipError
from tests.fakes import fixtures
from tests.fakes.bus import sqs_batch
from worker import messages

github_server = fixtures.github_server
ENVELOPE = {"type": "IssueQueued", "stream": "issue-o/r#1", "version": 2, "data": {"run": 1},
            "occurred_at": "2026-11-27T04:00:00.000Z"}


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_bare_envelopes_and_bus_events_both_parse():
    assert envelope_from_record({"body": json.dumps(ENVELOPE)})["type"] == "IssueQueued"
    assert envelope_from_record(sqs_batch([ENVELOPE])["Records"][0])["version"] == 2
    with pytest.raises(GipError):
        envelope_from_record({"body": json.dumps({"detail": "nope"})})


def test_one_parser_serves_the_lambdas_and_the_worker():
    body = json.dumps({"detail-type": "IssueQueued", "detail": ENVELOPE})
    assert envelope_from_sqs_body(body) == envelope_from_record({"body": body}) == ENVELOPE
    with pytest.raises(ValueError):  # what the worker drops as a malformed message
        envelope_from_sqs_body(json.dumps({"detail": {"no": "envelope"}}))
    with pytest.raises(GipError):  # what a Lambda consumer reports as a failed record
        envelope_from_sqs_body(json.dumps(["not", "an", "object"]))
    assert not hasattr(messages, "envelope_of")


def test_a_failing_record_fails_alone():
    seen = []

    def handle(envelope):
        seen.append(envelope["version"])
        if envelope["version"] == 2:
            raise RuntimeError("boom")

    batch = sqs_batch([{**ENVELOPE, "version": v} for v in (1, 2, 3)])
    assert run_batch(batch, None, handle, github=None, name="t") == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert seen == [1, 2, 3]


def test_records_that_cannot_start_before_the_deadline_are_handed_back_untouched():
    now = [0.0]
    seen = []

    def handle(envelope):
        seen.append(envelope["version"])
        now[0] += 10  # each record takes 10 s

    batch = sqs_batch([{**ENVELOPE, "version": v} for v in (1, 2, 3, 4)])
    result = run_batch(batch, Context(30_000), handle, github=None, name="t", clock=lambda: now[0])
    assert seen == [1, 2, 3]  # 30 s left, 5 s margin: the fourth would start at 30 s
    assert result == {"batchItemFailures": [{"itemIdentifier": "m3"}]}


def test_the_deadline_stops_github_retries_in_time(github_server):
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    client = GitHubClient(base_url=github_server.url, token="test-token", sleep=sleep,
                          clock=lambda: now[0], max_wait_s=30)
    github_server.fail_next(403, 5, {"Retry-After": "20"})
    batch = sqs_batch([ENVELOPE])
    result = run_batch(batch, Context(30_000), lambda e: client.login(), github=client, name="t",
                       clock=lambda: now[0])
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert sleeps == [20.0]  # a second 20 s wait would end past 25 s: raised instead


# ---------------------------------------------------------------- issue 19: a rate limit stops the batch


@pytest.fixture
def sqs_queue():
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="gk", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield sqs, url, arn


def received_batch(sqs, url, arn, n):
    from gip.local.sqs_mappings import lambda_records

    for v in range(1, n + 1):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({**ENVELOPE, "version": v}))
    got = []
    while len(got) < n:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                   VisibilityTimeout=30).get("Messages", [])
    return {"Records": lambda_records(got, queue_arn=arn, region="us-east-1")}


def test_a_rate_limit_stops_the_batch_and_hands_the_rest_back_for_the_wait(sqs_queue):
    from gip.adapters.github import errors

    sqs, url, arn = sqs_queue
    batch = received_batch(sqs, url, arn, 4)
    seen = []

    def handle(envelope):
        seen.append(envelope["version"])
        if len(seen) == 2:
            raise errors.RateLimited(403, 600.0)

    response = run_batch(batch, None, handle, github=None, name="t", sqs=lambda: sqs)
    ids = [r["messageId"] for r in batch["Records"]]
    assert seen == [1, 2]  # records 3 and 4 never ran
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ids[1:]
    visible = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert "Messages" not in visible  # held back for the wait, not the 30 s of this receive


def test_a_record_limited_again_is_sent_fresh_so_limits_never_reach_the_dlq(sqs_queue):
    from gip.adapters.github import errors
    from gip.adapters.github.consumer import requeue_args

    sqs, url, arn = sqs_queue
    batch = received_batch(sqs, url, arn, 2)
    for record in batch["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "2"

    def handle(envelope):
        raise errors.RateLimited(0, 30.0)

    response = run_batch(batch, None, handle, github=None, name="t", sqs=lambda: sqs)
    assert response == {"batchItemFailures": []}  # the originals are done: fresh copies wait
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesDelayed"]) == 2
    fifo = requeue_args("https://q/x.fifo", {**batch["Records"][0], "attributes": {
        "MessageGroupId": "g", "ApproximateReceiveCount": "3"}}, 30.0)
    assert fifo["MessageGroupId"] == "g" and fifo["MessageDeduplicationId"].endswith("-rl3")
    assert "DelaySeconds" not in fifo


def test_an_ordinary_failure_does_not_stop_the_batch(sqs_queue):
    sqs, url, arn = sqs_queue
    batch = received_batch(sqs, url, arn, 3)
    seen = []

    def handle(envelope):
        seen.append(envelope["version"])
        if envelope["version"] == 1:
            raise RuntimeError("boom")

    response = run_batch(batch, None, handle, github=None, name="t", sqs=lambda: sqs)
    assert seen == [1, 2, 3] and len(response["batchItemFailures"]) == 1
