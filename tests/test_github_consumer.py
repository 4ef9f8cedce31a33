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
