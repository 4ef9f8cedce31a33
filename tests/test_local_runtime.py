"""The pure parts of local mode (gip/local/): event shapes, partial batch failures, the
worker's environment, the compressed clock, the call counter, the printer, the gateway."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import requests

from gip.domain.delivery import verify_signature
from gip.errors import ConfigError, GipError
from gip.local import samples
from gip.local.apigw import Gateway, http_answer, proxy_event
from gip.local.aws_setup import rate_seconds
from gip.local.counting import CountingApp, s3_operation
from gip.local.lambdas import Function, merged_environment
from gip.local.printer import format_event
from gip.local.schedules import Job, Scheduler, local_period
from gip.local.sqs_mappings import failed_ids, lambda_records
from gip.local.streams import first_failure, lambda_record, stored_event
from gip.local.workers import worker_environment
from gip.services.webhook import request_parts


# ------------------------------------------------------------------ API Gateway
def test_proxy_event_keeps_the_body_byte_exact_for_the_webhook() -> None:
    body = samples.encode(samples.issue_payload(number=7, body="naïve — ünïcode"))
    headers = samples.headers(body, "s3cret", delivery="d-1")
    event = proxy_event(method="POST", path="/webhook", query="", headers=list(headers.items()),
                        body=body, source_ip="127.0.0.1")
    assert event["isBase64Encoded"] is False and event["requestContext"]["stage"] == "prod"
    assert event["multiValueHeaders"]["X-GitHub-Delivery"] == ["d-1"]
    got_headers, got_body = request_parts(event)
    assert got_body == body
    verify_signature(got_body, signature=got_headers["x-hub-signature-256"], secrets=("s3cret",))


def test_a_body_that_is_not_utf8_is_passed_base64_encoded() -> None:
    event = proxy_event(method="POST", path="/webhook", query="a=1&a=2", headers=[], body=b"\xff\xfe",
                        source_ip="127.0.0.1")
    assert event["isBase64Encoded"] is True
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert request_parts(event)[1] == b"\xff\xfe"


def test_a_malformed_function_answer_is_a_502_like_api_gateway() -> None:
    assert http_answer({"body": "x"})[0] == 502
    status, headers, body = http_answer({"statusCode": 202, "headers": {"A": "1"},
                                         "multiValueHeaders": {"B": ["2", "3"]}, "body": "ok"})
    assert (status, headers, body) == (202, [("A", "1"), ("B", "2"), ("B", "3")], b"ok")


def test_gateway_health_is_503_until_ready_then_200_and_webhook_answers_pass_through() -> None:
    state = {"ready": False}
    seen: list[dict] = []

    def invoke(event: dict) -> dict:
        seen.append(event)
        return {"statusCode": 401, "headers": {"Content-Type": "application/json"}, "body": '{"status": "rejected"}'}

    gateway = Gateway("127.0.0.1", 0, invoke=invoke,
                      health=lambda: (state["ready"], {"status": "ready" if state["ready"] else "starting"}))
    gateway.start()
    try:
        base = f"http://127.0.0.1:{gateway.port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 503
        state["ready"] = True
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ready"}
        answer = requests.post(f"{base}/webhook", data=b'{"a":1}', timeout=5)
        assert answer.status_code == 401 and answer.json() == {"status": "rejected"}
        assert seen[0]["body"] == '{"a":1}' and seen[0]["httpMethod"] == "POST"
        assert requests.post(f"{base}/elsewhere", timeout=5).status_code == 404
        with pytest.raises(GipError, match=f"port {gateway.port} on 127.0.0.1 is already in use"):
            Gateway("127.0.0.1", gateway.port, invoke=invoke, health=lambda: (True, {}))
    finally:
        gateway.stop()


# ------------------------------------------------------------------ event source mappings
def _sqs(n: int) -> list[dict]:
    return lambda_records([{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": "{}"} for i in range(n)],
                          queue_arn="arn:aws:sqs:us-east-1:123456789012:q", region="us-east-1")


def test_sqs_records_have_the_lambda_shape() -> None:
    record = _sqs(1)[0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":q")
    assert record["md5OfBody"] == "99914b932bd37a50b983c5e7c90ae93b"


@pytest.mark.parametrize(("response", "failed"), [
    ({"batchItemFailures": []}, set()),
    (None, set()),  # a handler that returns nothing succeeded
    ({"batchItemFailures": [{"itemIdentifier": "m1"}]}, {"m1"}),
    ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"m0", "m1", "m2"}),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"m0", "m1", "m2"}),
    ("not a dict", {"m0", "m1", "m2"}),
])
def test_only_the_failed_messages_stay_in_the_queue(response: object, failed: set[str]) -> None:
    assert failed_ids(_sqs(3), response) == failed


def _stream(seq: int, body: str | None = '{"type": "X"}', name: str = "INSERT") -> dict:
    image = {"pk": {"S": "issue-a/b#1"}} | ({"body": {"S": body}} if body else {})
    raw = {"eventID": str(seq), "eventName": name,
           "dynamodb": {"SequenceNumber": str(seq), "NewImage": image,
                        "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC)}}
    return lambda_record(raw, source_arn="arn:stream", region="us-east-1")


def test_stream_records_resume_at_the_first_failed_sequence_number() -> None:
    records = [_stream(10), _stream(11), _stream(12)]
    assert records[0]["dynamodb"]["ApproximateCreationDateTime"] == 1767225600.0
    assert first_failure(records, {"batchItemFailures": []}) is None
    assert first_failure(records, {"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}) == 1
    assert first_failure(records, {"batchItemFailures": [{"itemIdentifier": "99"}]}) == 0


def test_only_stored_events_are_printed_not_markers_or_updates() -> None:
    assert stored_event(_stream(1)) == {"type": "X"}
    assert stored_event(_stream(2, body=None)) is None
    assert stored_event(_stream(3, name="MODIFY")) is None


# ------------------------------------------------------------------ functions and workers
def test_function_environments_merge_and_a_conflict_is_refused() -> None:
    a = Function("a", "arn:a", "m.h", env={"GIP_PREFIX": "p", "X": "1"})
    b = Function("b", "arn:b", "m.h", env={"GIP_PREFIX": "p", "Y": "2"})
    assert merged_environment([a, b]) == {"GIP_PREFIX": "p", "X": "1", "Y": "2"}
    with pytest.raises(ConfigError, match="X is '1' for a and '3' for c"):
        merged_environment([a, Function("c", "arn:c", "m.h", env={"X": "3"})])


def test_the_worker_never_gets_the_github_token_or_the_webhook_secret() -> None:
    parent = {"PATH": "/bin", "HOME": "/h", "GITHUB_TOKEN": "ghp_x", "GITHUB_WEBHOOK_SECRET": "s",
              "AWS_PROFILE": "prod", "SOMETHING_ELSE": "1"}
    task = {"ISSUE_QUEUE_URL": "q", "BUNDLE_KEY": "k", "GITHUB_TOKEN": "smuggled"}
    env = worker_environment(task, name="w1", endpoint="http://127.0.0.1:1", region="us-east-1",
                             credentials={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, parent=parent)
    assert not any(k.startswith("GITHUB_") for k in env)
    assert "AWS_PROFILE" not in env and "SOMETHING_ELSE" not in env and "BUNDLE_KEY" not in env
    assert env["ISSUE_QUEUE_URL"] == "q" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["WORKER_NAME"] == "w1" and env["AWS_ACCESS_KEY_ID"] == "a" and env["PATH"] == "/bin"


# ------------------------------------------------------------------ the compressed clock
def test_schedules_run_on_the_compressed_clock() -> None:
    assert rate_seconds("rate(1 hour)") == 3600 and rate_seconds("rate(15 minutes)") == 900
    assert rate_seconds("cron(0 * * * ? *)") is None
    assert local_period(3600) == 4.0 and local_period(900) == 2.0 and local_period(300) == 2.0


def test_a_failing_schedule_logs_one_line_and_the_others_keep_running(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("endpoint hiccup")

    import threading

    scheduler = Scheduler([Job("reconcile", 4.0, lambda: ran.append("r")), Job("sweeper", 2.0, boom)],
                          stop=threading.Event(), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert scheduler.tick() == pytest.approx(2.0)
        now[0] += 2.0
        scheduler.tick()
        now[0] += 2.0
        scheduler.tick()
    assert ran == ["r", "r"] and scheduler.runs == {"reconcile": 2, "sweeper": 3}
    assert [r.getMessage() for r in caplog.records].count("schedule sweeper failed: RuntimeError: endpoint hiccup") == 3


# ------------------------------------------------------------------ counting and printing
def test_the_counter_names_calls_by_service_and_operation_and_sets_empty_polls_apart() -> None:
    answers = {"AmazonSQS.ReceiveMessage": b"{}", "DynamoDB_20120810.PutItem": b"{}"}

    def app(environ: dict, start_response: object) -> list[bytes]:
        return [answers.get(environ.get("HTTP_X_AMZ_TARGET", ""), b'{"Messages": [1]}')]

    counter = CountingApp(app)
    auth = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/{}/aws4_request, SignedHeaders=x"
    for service, target in (("sqs", "AmazonSQS.ReceiveMessage"), ("dynamodb", "DynamoDB_20120810.PutItem"),
                            ("dynamodb", "DynamoDB_20120810.PutItem")):
        counter({"HTTP_AUTHORIZATION": auth.format(service), "HTTP_X_AMZ_TARGET": target}, None)
    assert counter.snapshot() == {"calls": {"dynamodb:PutItem": 2}, "empty_polls": {"sqs:ReceiveMessage": 1}}
    assert s3_operation("PUT", "/bucket/key/x.json", "") == "PutObject"
    assert s3_operation("GET", "/bucket", "list-type=2") == "ListObjects"
    assert s3_operation("GET", "/", "") == "ListBuckets"


def test_one_readable_line_per_event() -> None:
    line = format_event({"type": "AccountReserved", "stream": "account-123456789012", "version": 2,
                         "occurred_at": "2026-11-27T05:01:31.556Z",
                         "data": {"lease_id": "0b281ab1-aaaa", "issue": "issue-octo/x#1", "worker": "w1",
                                  "expires_at": "…"}})
    assert line.startswith("2026-11-27T05:01:31.556Z  AccountReserved")
    assert "account-123456789012" in line and "v2" in line
    assert line.endswith("issue=octo/x#1 lease=0b281ab1… worker=w1")
    assert "\n" not in format_event({"type": "Unknown", "data": {"x": 1}})


def test_the_sample_curl_line_is_signed_for_the_body_it_sends(tmp_path) -> None:
    body = samples.encode(samples.issue_payload(number=1, body=samples.FAILS))
    line = samples.curl_command("http://127.0.0.1:8080/webhook", str(tmp_path / "s.json"), body, "k")
    signature = line.split("X-Hub-Signature-256: ")[1].split("'")[0]
    verify_signature(body, signature=signature, secrets=("k",))
    assert json.loads(body)["issue"]["author_association"] == "MEMBER"
