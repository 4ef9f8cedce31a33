"""End to end in ``--local``, on a second local stack (the fixture of tests/test_local_e2e.py; the
two files run side by side under xdist):

- issue 14 §2/§3: a bus subscriber whose target is gone; its record is parked, the rest flow;
- issue 17: the repository's ``.github/reproduce.yml`` on the fake GitHub, a local PEP 691 index
  listing 1.0.0 to 1.6.0, a snippet that fails below 1.4.0 and an issue reporting 1.1.0 →
  ``fixed_in_latest``, ``fixed_in`` 1.4.0, the table in the comment, the summary label, at most
  2 + ⌈log2 5⌉ runs. Then an invalid file → a ``bad_config`` skip whose comment names the line.

The tests run in this order: the matrix test leaves the invalid ``reproduce.yml`` in place."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests

from gip.domain.comment import STATUS_MARKER
from gip.local import samples
from tests.fakes.github_server import FakeGitHub
from tests.test_local_e2e import (  # noqa: F401 (stack: the module's own local stack)
    RUN_TIMEOUT_S,
    STREAM_RETRIES,
    _cli,
    _events,
    _send,
    _types,
    _wait,
    stack,
)
from tests.test_matrix_worker import BODY
from tests.test_repo_config import Index

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(600)]
REPO = samples.REPO


def test_a_broken_subscription_parks_its_records_and_the_rest_flow(stack: SimpleNamespace) -> None:  # noqa: F811
    """Issue 14 §2/§3: a subscriber whose target is gone. moto delivers synchronously, so the
    publish fails; the stream mapping retries it MaximumRetryAttempts times (here
    GIP_LOCAL_STREAM_RETRIES), then parks it in the publisher DLQ (the template's on-failure
    destination) and the pipeline goes on."""
    gh: FakeGitHub = stack.gh
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=stack.endpoint)
    doomed = sqs.create_queue(QueueName="e2e-doomed")["QueueUrl"]
    doomed_arn = sqs.get_queue_attributes(QueueUrl=doomed, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"detail-type": ["IssueReceived"], "detail": {"data": {"number": [5]}}})
    done = _cli("subscribe", "broken", "--pattern", pattern, "--target", doomed_arn, endpoint=stack.endpoint)
    assert done.returncode == 0, done.stdout + done.stderr
    sqs.delete_queue(QueueUrl=doomed)  # the subscriber's target breaks
    payloads = {n: samples.issue_payload(number=n, title=f"issue {n}", body=samples.FAILS) for n in (5, 6)}
    for payload in payloads.values():
        gh.add_issue_from_payload(payload)
    assert _send(stack, payloads[5], delivery="e2e-5").json()["status"] == "accepted"

    def degraded() -> dict[str, Any] | None:
        doc = requests.get(f"{stack.base}/healthz", timeout=10).json()
        return doc if doc["publisher"]["parked"] else None

    doc = _wait(degraded, timeout=300, what="the record parked", proc=stack.proc, log=stack.log)
    assert doc["status"] == "degraded" and doc["dlq"]["publisher"] == 1
    assert "1 record(s) parked after failing (in the publisher DLQ)" in doc["reasons"]
    assert "dead-letter queue publisher holds 1 message(s)" in doc["reasons"]
    parked_url = sqs.get_queue_url(QueueName="github-issue-processor-publisher-dlq")["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=parked_url, VisibilityTimeout=0)["Messages"]
    context = json.loads(message["Body"])["requestContext"]
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["approximateInvokeCount"] == 1 + STREAM_RETRIES  # the first attempt and every retry
    status = _cli("status", endpoint=stack.endpoint)
    assert status.stdout.splitlines()[:2] == ["health: degraded", "  1 record(s) parked after failing (in the publisher DLQ)"]
    # ... and the pipeline flows on for everyone else: issue 6 reaches its verdict
    assert _send(stack, payloads[6], delivery="e2e-6").json()["status"] == "accepted"
    _wait(lambda: "IssueProcessed" in _types(stack, 6), timeout=RUN_TIMEOUT_S,
          what="issue 6's verdict", proc=stack.proc, log=stack.log)
    assert "IssueProcessed" in [e["type"] for e in _events(stack, 6)]
    assert _cli("unsubscribe", "broken", endpoint=stack.endpoint).returncode == 0


def _status(gh: FakeGitHub, number: int) -> str:
    ours = [c["body"] for c in gh.comments(REPO, number) if c["body"].startswith(STATUS_MARKER)]
    return ours[0] if len(ours) == 1 else ""


def test_a_matrix_run_names_the_fix_and_a_bad_config_names_its_line(stack: SimpleNamespace) -> None:  # noqa: F811
    gh: FakeGitHub = stack.gh
    index = Index()
    try:
        gh.set_file(REPO, ".github/reproduce.yml",
                    f"versions:\n  source: pypi:demo\n  index: {index.url}/simple\nbisect: true\nmax_runs: 8\n")
        payload = samples.issue_payload(number=11, title="fails on old versions", body=BODY)
        gh.add_issue_from_payload(payload)
        assert _send(stack, payload, delivery="mx-11").status_code == 202

        _wait(lambda: "IssueProcessed" in _types(stack, 11), timeout=RUN_TIMEOUT_S * 2, what="the matrix run",
              proc=stack.proc, log=stack.log)
        data = [e for e in _events(stack, 11) if e["type"] == "IssueProcessed"][-1]["data"]
        queued = [e for e in _events(stack, 11) if e["type"] == "IssueQueued"][-1]
        assert queued["data"]["matrix_config"]["versions"] == [f"1.{i}.0" for i in range(7)]
        assert (data["summary"], data["fixed_in"], data["verdict"]) == ("fixed_in_latest", "1.4.0", "reproduced")
        assert len(data["matrix"]) <= 2 + math.ceil(math.log2(5))
        assert len(index.requests) == 1  # the registry once per issue

        def commented() -> str:
            body = _status(gh, 11)
            return body if "| Version | Verdict | Time |" in body and "fixed-in-latest" in gh.labels(REPO, 11) else ""

        body = _wait(commented, timeout=60, what="the matrix comment and label", proc=stack.proc, log=stack.log)
        assert "| `1.4.0` | ❌ Not reproduced |" in body and "fixed in 1.4.0" in body

        # an invalid file: a bad_config skip, and a comment that names the line
        gh.set_file(REPO, ".github/reproduce.yml", "versions:\n  source: pypi:demo\nmax_runs: lots\n")
        bad = samples.issue_payload(number=12, title="another", body=BODY)
        gh.add_issue_from_payload(bad)
        assert _send(stack, bad, delivery="mx-12").status_code == 202

        _wait(lambda: "IssueSkipped" in _types(stack, 12), timeout=RUN_TIMEOUT_S, what="the bad_config skip",
              proc=stack.proc, log=stack.log)
        skip = [e for e in _events(stack, 12) if e["type"] == "IssueSkipped"][-1]["data"]
        assert skip["reason"] == "bad_config" and "line 3" in skip["detail"]
        body = _wait(lambda: _status(gh, 12), timeout=60, what="the bad_config comment", proc=stack.proc,
                     log=stack.log)
        assert "reproduce.yml line 3: max_runs: 'lots' is not of type 'integer'" in body
    finally:
        index.stop()
