"""Logs and metrics (gip/observability.py, gip/domain/metrics.py): the JSON lines and their
keys, redaction, the metric points, local mode's files per function, the worker's keys."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

from gip import observability
from gip.domain import metrics
from gip.domain.envelope import Cause, new_event
from gip.local.workers import Workers, classify_line, echo_line
from handlers import gatekeeper, org_events
from handlers import webhook as webhook_handler

log = logging.getLogger("tests.observability")


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
    """The JSON log lines printed so far (the process's logging is set up as a Lambda's)."""
    observability.setup()
    caplog.set_level(logging.INFO)

    def read() -> list[dict[str, Any]]:
        out = capsys.readouterr().out.splitlines()
        return [json.loads(line) for line in out if line.startswith("{") and '"level"' in line]

    return read


def queued(number: int = 7, **data: Any) -> dict[str, Any]:
    event = new_event("IssueQueued", stream=f"issue-octo/demo#{number}",
                      data={"run": 1, "sender": "maint", "permission": "write", **data},
                      cause=Cause(correlation_id="delivery-abc", actor="gatekeeper"))
    return {**event, "version": 2}


# --------------------------------------------------------------------------- log lines
def test_a_gatekeeper_record_logs_json_with_its_delivery_stream_and_type(lines, monkeypatch) -> None:
    def handle(envelope: dict[str, Any]) -> str:
        logging.getLogger("gip.services.gatekeeper").info("deciding")
        return "queued"

    monkeypatch.setattr(gatekeeper, "_service", lambda: SimpleNamespace(handle=handle, github=None))
    event = {"Records": [{"messageId": "m1", "body": json.dumps({"detail": queued()}), "attributes": {},
                          "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
                          "receiptHandle": "r"}]}
    context = SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 60_000)
    assert gatekeeper.handler(event, context) == {"batchItemFailures": []}
    log.info("after the invocation")
    deciding, after = [line for line in lines() if line["message"] in ("deciding", "after the invocation")]
    assert deciding["correlation_id"] == "delivery-abc" and deciding["stream"] == "issue-octo/demo#7"
    assert deciding["event_type"] == "IssueQueued" and deciding["service"] == "gatekeeper"
    assert deciding["function_request_id"] == "req-1" and deciding["level"] == "INFO"
    assert deciding["name"] == "gip.services.gatekeeper" and deciding["timestamp"].endswith("+00:00")
    assert not set(observability.KEYS) & set(after)  # the keys end with the record


def test_account_and_lease_come_from_the_event(lines) -> None:
    reserved = {"correlation_id": "d-9", "stream": "account-123456789012", "type": "AccountReserved",
                "data": {"lease_id": "L-1", "issue": "issue-o/r#1"}}
    with observability.log_keys(**observability.event_keys(reserved)):
        log.warning("reserved")
    [line] = [x for x in lines() if x["message"] == "reserved"]
    assert (line["account_id"], line["lease_id"], line["event_type"]) == ("123456789012", "L-1", "AccountReserved")


def test_an_org_event_logs_the_correlation_its_lifecycle_records(lines, monkeypatch) -> None:
    class Lifecycle:
        def apply(self, change: Any) -> str:
            return "registered"

    monkeypatch.setattr(org_events, "_service", lambda: Lifecycle())
    body = {"id": "ev-1", "detail": {"eventSource": "organizations.amazonaws.com", "eventName": "CloseAccount",
                                     "eventID": "ct-1", "requestParameters": {"accountId": "210987654321"}}}
    event = {"Records": [{"messageId": "m1", "body": json.dumps(body), "receiptHandle": "r", "attributes": {},
                          "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}]}
    assert org_events.lambda_handler(event, None) == {"batchItemFailures": []}
    [line] = [x for x in lines() if x["message"].startswith("CloseAccount")]
    assert line["correlation_id"] == "org-ct-1" and line["service"] == "org-events"
    assert line["account_id"] == "210987654321" and line["event_type"] == "CloseAccount"


def test_a_webhook_delivery_logs_its_delivery_id_as_correlation_id(lines, monkeypatch) -> None:
    from gip.local import samples
    from gip.local.apigw import proxy_event

    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "the-right-secret-1")
    webhook_handler.reset()
    body = samples.encode(samples.issue_payload(number=3, body="x"))
    headers = samples.headers(body, "a-wrong-secret-22", delivery="d-hook-1")
    event = proxy_event(method="POST", path="/webhook", query="", headers=list(headers.items()), body=body,
                        source_ip="127.0.0.1")
    try:
        assert webhook_handler.handler(event, None)["statusCode"] == 401
    finally:
        webhook_handler.reset()
    logged = [x for x in lines() if x.get("service") == "webhook"]
    assert logged and all(x["correlation_id"] == "d-hook-1" for x in logged)
    assert "the-right-secret-1" not in json.dumps(logged)


# --------------------------------------------------------------------------- redaction
def test_secrets_never_reach_a_log_line(lines, monkeypatch) -> None:
    secret = "whsec-0f9e8d7c6b5a4"
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", secret)
    webhook_handler.reset()
    try:
        assert webhook_handler._secrets() == (secret,)  # reading it hides it
    finally:
        webhook_handler.reset()
    token, key = "ghs_" + "A1b2C3d4E5f6G7h8I9j0" * 2, "AKIA" + "ABCDEFGHIJKLMNOP"
    log.error("signature with %s failed; token %s key %s", secret, token, key, extra={"api_token": "plain-value"})
    try:
        raise ValueError(f"bad secret {secret}")
    except ValueError:
        log.exception("crashed")
    text = "\n".join(json.dumps(line) for line in lines())
    for leaked in (secret, token, key, "plain-value"):
        assert leaked not in text
    assert "[REDACTED GITHUB TOKEN]" in text and "[REDACTED AWS KEY ID]" in text and '"api_token": "[REDACTED]"' in text


# --------------------------------------------------------------------------- metric points
def test_each_event_maps_to_its_points() -> None:
    def names(type_: str, data: dict[str, Any], **extra: Any) -> list[tuple[str, float, tuple[Any, ...]]]:
        return [(p.name, p.value, p.dimensions) for p in metrics.from_event({"type": type_, "data": data, **extra})]

    assert names("IssueReceived", {}) == [("IssuesReceived", 1.0, ())]
    assert names("IssueProcessed", {"verdict": "made_up", "duration_s": 2}) == [
        ("IssuesProcessed", 1.0, (("Verdict", "other"),)), ("ProcessingSeconds", 2.0, ())]
    assert names("IssueProcessingFailed", {"retryable": True}) == [("IssueFailures", 1.0, (("Retryable", "true"),))]
    assert names("AccountQuarantined", {}) == [("Quarantines", 1.0, ())]
    assert names("AccountTimedOut", {"reserved_at": "2026-01-01T00:00:00.000Z"},
                 occurred_at="2026-01-01T00:15:00.000Z") == [("LeaseSeconds", 900.0, (("End", "timed_out"),))]
    assert names("AccountReserved", {}) == [] and names("IssueProcessed", None) == []  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Verdict"):
        metrics.point(metrics.ISSUES_PROCESSED, 1)


def test_emit_prints_one_emf_blob_per_dimension_set(capsys) -> None:
    observability.emit(metrics.accounts(usable=3, available=1)
                       + metrics.lease_seconds(reserved_at="2026-01-01T00:00:00Z", released_at="2026-01-01T00:01:00Z"),
                       prefix="gip-x")
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [b["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for b in blobs] == [[["Prefix"]], [["Prefix", "End"]]]
    assert blobs[0]["UsableAccounts"] == [3.0] and blobs[0]["AvailableAccounts"] == [1.0]
    assert (blobs[1]["End"], blobs[1]["LeaseSeconds"], blobs[1]["Prefix"]) == ("released", [60.0], "gip-x")
    assert blobs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "LeaseSeconds", "Unit": "Seconds"}]


# --------------------------------------------------------------------------- local mode
def test_local_mode_writes_each_functions_lines_to_its_own_file(tmp_path) -> None:
    files = observability.FunctionFiles(tmp_path)
    files.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("tests.observability.local")
    logger.addHandler(files)
    logger.setLevel(logging.INFO)
    try:
        @observability.entry("notifier")
        def notifier(event: Any, context: Any) -> None:
            with observability.log_keys(**observability.event_keys(queued())):
                logger.info("commenting")

        notifier({}, None)
        logger.info("supervisor line")
    finally:
        logger.removeHandler(files)
        files.close()
    [line] = [json.loads(x) for x in (tmp_path / "notifier.jsonl").read_text().splitlines()]
    assert (line["service"], line["correlation_id"], line["message"]) == ("notifier", "delivery-abc", "commenting")
    assert json.loads((tmp_path / "local.jsonl").read_text())["message"] == "supervisor line"


def test_a_local_workers_json_lines_are_filed_and_its_warnings_echoed_readably(tmp_path) -> None:
    out = [json.dumps({"level": "INFO", "message": "took it", "name": "worker.loop", "correlation_id": "d-1"}),
           json.dumps({"level": "WARNING", "message": "release refused", "name": "worker.loop"}),
           '{"_aws":{"CloudWatchMetrics":[]},"LeaseSeconds":[3.0]}', "error: RESULTS_BUCKET is not set"]
    echoed: list[str] = []
    workers = Workers(count=0, env_for=dict, log_dir=tmp_path / "run", json_dir=tmp_path / "logs", echo=echoed.append)
    (tmp_path / "run").mkdir()
    workers._pump("local-worker-1", io.BytesIO("\n".join(out).encode() + b"\n"))
    filed = [json.loads(x) for x in (tmp_path / "logs" / "local-worker-1.jsonl").read_text().splitlines()]
    assert [x["message"] for x in filed] == ["took it", "release refused"] and filed[0]["correlation_id"] == "d-1"
    assert (tmp_path / "run" / "metrics.log").read_text().startswith('{"_aws"')
    assert echoed == ["[local-worker-1] WARNING worker.loop: release refused",
                      "[local-worker-1] error: RESULTS_BUCKET is not set"]
    assert classify_line("{not json") == ("text", None) and echo_line("w", out[0]) is None


# --------------------------------------------------------------------------- the worker
@pytest.fixture(scope="module")
def stack():
    from tests.worker_env import make_stack

    with mock_aws():
        yield make_stack(prefix="obs")


def test_the_worker_logs_its_keys_and_measures_queue_wait_and_lease(stack, lines) -> None:
    from tests.worker_env import make_worker, member_ids, queue_issue, register, reproduce

    member = member_ids(1, start=90)[0]
    register(stack, [member])
    body = "### Reproduction Steps\n\n```bash\nexit 3\n```\n\n### Expected behavior\n\nno crash\n"
    message = queue_issue(stack, body, number=90)

    def processor(job: Any) -> Any:
        logging.getLogger("worker.processor").info("running the snippet")
        return reproduce(job)

    points: list[metrics.Point] = []
    worker = make_worker(stack, processor=processor)
    worker.metrics = points.extend
    assert worker.poll_once() == "reproduced"
    [line] = [x for x in lines() if x["message"] == "running the snippet"]
    assert line["correlation_id"] == message["correlation_id"] and line["stream"] == "issue-octo/demo#90"
    assert line["account_id"] == member and line["lease_id"] and line["event_type"] == "IssueQueued"
    assert [p.name for p in points] == ["QueueWaitSeconds", "LeaseSeconds"]
    assert points[1].dimensions == (("End", "released"),) and all(p.value >= 0 for p in points)
