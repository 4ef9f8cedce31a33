"""The webhook end to end over moto in-process: answers, appends, idempotency, fuzz."""

from __future__ import annotations

import base64
import copy
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gip.domain.delivery import signature_for
from gip.domain.envelope import Cause
from gip.domain.qualify import Rules
from gip.services import webhook as webhook_service
from handlers import webhook
from tests.conftest import empty_tables

EVENTS = Path(__file__).parent / "events"
SECRET = "test-webhook-secret"  # the secret tests/events/wh_*.json are signed with
RULES = Rules(required_labels=("needs-reproduction", "repro"), bot_login="repro-bot[bot]")
REPO, NUMBER = "octo-org/hello-world", 42
STREAM = f"issue-{REPO}#{NUMBER}"


def recorded(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    doc = json.loads((EVENTS / name).read_text())
    return dict(doc["headers"]), doc["payload"]


def compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def core(shared_core: SimpleNamespace) -> SimpleNamespace:
    """The shared tables, emptied, and no secret in Secrets Manager."""
    empty_tables(shared_core)
    sm = boto3.client("secretsmanager")
    for secret in sm.list_secrets()["SecretList"]:
        sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    return shared_core


def proxy_event(headers: dict[str, str], body: bytes, *, b64: bool = False) -> dict[str, Any]:
    """An API Gateway REST proxy event as Lambda receives it."""
    return {
        "resource": "/webhook", "path": "/webhook", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {"stage": "prod", "httpMethod": "POST"},
        "body": base64.b64encode(body).decode() if b64 else body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": b64,
    }


def delivery(name: str, *, delivery_id: str | None = None, mutate: Any = None,
             secret: str = SECRET, b64: bool = False) -> dict[str, Any]:
    """A recorded delivery, optionally changed, re-signed as GitHub would sign it."""
    headers, payload = recorded(name)
    payload = copy.deepcopy(payload)
    if mutate:
        mutate(payload)
    body = compact(payload)
    headers["X-Hub-Signature-256"] = signature_for(body, secret)
    if delivery_id:
        headers["X-GitHub-Delivery"] = delivery_id
    return proxy_event(headers, body, b64=b64)


def call(core: SimpleNamespace, event: dict[str, Any], *, max_bytes: int = 1 << 20) -> tuple[int, dict[str, str]]:
    response = webhook_service.handle(event, rules=RULES, secrets=(SECRET,), max_bytes=max_bytes,
                              issues=lambda: core.issues)
    return response["statusCode"], json.loads(response["body"])


def items(core: SimpleNamespace) -> list[dict[str, Any]]:
    """Every item in the events table (events and delivery markers; not the day index)."""
    found = boto3.client("dynamodb").scan(TableName=core.settings.events_table)["Items"]
    return [item for item in found if item["pk"]["S"] != "log-days"]


def log_of(core: SimpleNamespace) -> list[dict[str, Any]]:
    return core.store.read(STREAM)


# --- qualifying deliveries -----------------------------------------------------------------


def test_labeled_delivery_appends_issue_received_once_and_answers_202(core: SimpleNamespace) -> None:
    status, body = call(core, delivery("wh_issues_labeled.json"))
    assert (status, body) == (202, {"status": "accepted", "reason": "run 1 received"})
    (event,) = log_of(core)
    assert event["type"] == "IssueReceived"
    assert event["correlation_id"] == "5b8e9a20-16b1-11ef-9d1e-7f0c3b2a1e02"
    assert event["actor"] == "webhook"
    data = event["data"]
    assert {k: data[k] for k in ("repo", "number", "trigger", "sender", "run", "label")} == {
        "repo": REPO, "number": NUMBER, "trigger": "labeled", "sender": "monalisa", "run": 1,
        "label": "needs-reproduction"}
    assert data["labels"] == ["bug", "needs-reproduction"]
    assert data["html_url"] == "https://github.com/octo-org/hello-world/issues/42"
    assert data["author_association"] == "CONTRIBUTOR"
    assert "s3.put_object" in data["body"]
    assert len(items(core)) == 2  # the event and the delivery marker
    assert core.issues.get(REPO, NUMBER).status == "RECEIVED"


def test_same_delivery_twice_appends_once(core: SimpleNamespace) -> None:
    first = call(core, delivery("wh_issues_labeled.json"))
    second = call(core, delivery("wh_issues_labeled.json"))
    assert first[0] == second[0] == 202
    assert second[1]["status"] == "ignored"
    assert len(log_of(core)) == 1 and len(items(core)) == 2


def test_redelivery_after_the_run_ended_is_still_a_duplicate(core: SimpleNamespace) -> None:
    """GIVEN a run that was received then cancelled WHEN GitHub redelivers the trigger THEN nothing."""
    call(core, delivery("wh_issues_labeled.json"))
    core.issues.cancel(REPO, NUMBER, reason="closed", cause=Cause(correlation_id="x", actor="test"))
    status, body = call(core, delivery("wh_issues_labeled.json"))
    assert (status, body) == (202, {"status": "ignored", "reason": "duplicate delivery"})
    assert [e["type"] for e in log_of(core)] == ["IssueReceived", "IssueSkipped"]


def test_opened_then_labeled_fan_out_is_one_run(core: SimpleNamespace) -> None:
    assert call(core, delivery("wh_issues_opened.json"))[1]["status"] == "accepted"
    status, body = call(core, delivery("wh_issues_labeled.json"))
    assert (status, body) == (202, {"status": "ignored", "reason": "already active"})
    assert [e["data"]["trigger"] for e in log_of(core)] == ["opened"]


def test_two_required_labels_are_one_run(core: SimpleNamespace) -> None:
    def second_label(p: dict[str, Any]) -> None:
        p["label"] = dict(p["label"], name="repro", id=8)
        p["issue"]["labels"].append(p["label"])

    call(core, delivery("wh_issues_labeled.json"))
    status, body = call(core, delivery("wh_issues_labeled.json", delivery_id="other-1",
                                       mutate=second_label))
    assert (status, body["reason"]) == (202, "already active")
    assert len(log_of(core)) == 1


def test_command_comment_starts_a_run(core: SimpleNamespace) -> None:
    status, body = call(core, delivery("wh_issue_comment_created.json"))
    assert (status, body["status"]) == (202, "accepted")
    (event,) = log_of(core)
    assert (event["data"]["trigger"], event["data"]["command"]) == ("command", "/reproduce")
    assert event["data"]["comment_id"] == 2124455001


def test_close_cancels_a_waiting_run_and_a_new_trigger_runs_again(core: SimpleNamespace) -> None:
    call(core, delivery("wh_issues_labeled.json"))
    cause = Cause(correlation_id="g", actor="gatekeeper")
    core.issues.record(REPO, NUMBER, "IssueQueued", {"run": 1, "sender": "monalisa", "permission": "write"},
                       cause=cause)

    def close(p: dict[str, Any]) -> None:
        p["action"], p["issue"]["state"] = "closed", "closed"

    status, body = call(core, delivery("wh_issues_opened.json", delivery_id="close-1", mutate=close))
    assert (status, body) == (202, {"status": "accepted", "reason": "run 1 skipped (closed)"})
    assert log_of(core)[-1]["data"] == {"reason": "closed", "run": 1}
    # the same close again: nothing left to cancel
    assert call(core, delivery("wh_issues_opened.json", delivery_id="close-1", mutate=close))[1] == {
        "status": "ignored", "reason": "no queued run to cancel"}
    # reopened: a new run, with the run number going up
    status, body = call(core, delivery("wh_issues_opened.json", delivery_id="reopen-1",
                                       mutate=lambda p: p.update(action="reopened")))
    assert (status, body["reason"]) == (202, "run 2 received")
    assert [e["type"] for e in log_of(core)] == ["IssueReceived", "IssueQueued", "IssueSkipped",
                                                 "IssueReceived"]


def test_removing_the_last_required_label_cancels_with_label_removed(core: SimpleNamespace) -> None:
    call(core, delivery("wh_issues_labeled.json"))

    def unlabel(p: dict[str, Any]) -> None:
        p["action"] = "unlabeled"
        p["issue"]["labels"] = [lab for lab in p["issue"]["labels"] if lab["name"] == "bug"]

    status, body = call(core, delivery("wh_issues_labeled.json", delivery_id="unl-1", mutate=unlabel))
    assert (status, body["reason"]) == (202, "run 1 skipped (label_removed)")
    assert log_of(core)[-1]["data"]["reason"] == "label_removed"


def test_close_without_any_run_appends_nothing(core: SimpleNamespace) -> None:
    status, body = call(core, delivery("wh_issues_opened.json",
                                       mutate=lambda p: p.update(action="closed")))
    assert (status, body["status"]) == (202, "ignored")
    assert items(core) == []


def test_base64_body_is_decoded_before_the_signature_check(core: SimpleNamespace) -> None:
    status, body = call(core, delivery("wh_issues_labeled.json", b64=True))
    assert (status, body["status"]) == (202, "accepted")


def test_raw_http_request_from_local_mode_round_trips_byte_exact(core: SimpleNamespace) -> None:
    headers, payload = recorded("wh_issues_labeled.json")
    body = json.dumps(payload, indent=1, ensure_ascii=False).encode() + b"\n"  # any bytes GitHub sends
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    status, answer = call(core, webhook_service.http_event(headers, body))
    assert (status, answer["status"]) == (202, "accepted")


# --- answers that append nothing ------------------------------------------------------------


def test_ping_is_200(core: SimpleNamespace) -> None:
    assert call(core, delivery("wh_ping.json")) == (200, {"status": "ok", "reason": "pong"})
    assert items(core) == []


def test_header_names_are_case_insensitive(core: SimpleNamespace) -> None:
    event = delivery("wh_ping.json")
    event["headers"] = {k.upper(): v for k, v in event["headers"].items()}
    assert call(core, event)[0] == 200
    event["headers"] = {k.lower(): v for k, v in event["headers"].items()}
    assert call(core, event)[0] == 200


def test_http_api_event_without_multi_value_headers_works(core: SimpleNamespace) -> None:
    event = delivery("wh_ping.json")
    event.pop("multiValueHeaders")
    assert call(core, event)[0] == 200
    event = delivery("wh_ping.json")
    event["headers"] = None
    assert call(core, event)[0] == 200  # REST events may carry only multiValueHeaders


def rejected(status: int, reason_part: str) -> Any:
    class Matches:
        def __eq__(self, other: object) -> bool:
            code, body = other  # type: ignore[misc]
            return code == status and body["status"] == "rejected" and reason_part in body["reason"]

        def __repr__(self) -> str:
            return f"<{status} mentioning {reason_part!r}>"

    return Matches()


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"])
def test_missing_github_header_is_400(core: SimpleNamespace, header: str) -> None:
    event = delivery("wh_issues_labeled.json")
    del event["headers"][header]
    event.pop("multiValueHeaders")
    assert call(core, event) == rejected(400, header.lower())
    assert items(core) == []


def test_form_encoded_delivery_is_415(core: SimpleNamespace) -> None:
    headers, payload = recorded("wh_issues_labeled.json")
    body = b"payload=" + json.dumps(payload).encode()
    headers |= {"Content-Type": "application/x-www-form-urlencoded",
                "X-Hub-Signature-256": signature_for(body, SECRET)}
    assert call(core, proxy_event(headers, body)) == rejected(415, "application/json")
    assert items(core) == []


def test_signed_non_json_body_is_400(core: SimpleNamespace) -> None:
    headers, _ = recorded("wh_issues_labeled.json")
    body = b"<xml>not json</xml>"
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    assert call(core, proxy_event(headers, body)) == rejected(400, "JSON")
    assert items(core) == []


def test_invalid_base64_body_is_400(core: SimpleNamespace) -> None:
    event = delivery("wh_issues_labeled.json")
    event |= {"isBase64Encoded": True, "body": "%%%not base64%%%"}
    assert call(core, event) == rejected(400, "base64")


def test_body_over_the_cap_is_413_and_only_a_signed_one_is_recorded(core: SimpleNamespace) -> None:
    event = delivery("wh_issues_labeled.json")
    assert call(core, event, max_bytes=1000) == rejected(413, "limit is 1000")
    [marker] = items(core)  # for the redelivery sweep: no event, no run
    assert marker["pk"]["S"] == f"oversized-{event['headers']['X-GitHub-Delivery']}"
    assert (marker["kind"]["S"], marker["type"]["S"]) == ("oversized", "issues")
    assert "body" not in marker and "day" not in marker
    forged = delivery("wh_issues_labeled.json", secret="wrong secret")
    forged["headers"]["X-GitHub-Delivery"] = "forged-id"
    assert call(core, forged, max_bytes=1000)[0] == 413
    assert [i["pk"]["S"] for i in items(core)] == [marker["pk"]["S"]]


@pytest.mark.parametrize("secret", ["wrong secret", ""])
def test_bad_signature_is_401(core: SimpleNamespace, secret: str) -> None:
    event = delivery("wh_issues_labeled.json", secret=secret or "x")
    if not secret:
        event["headers"]["X-Hub-Signature-256"] = "sha1=abc"
    assert call(core, event)[0] == 401
    assert items(core) == []


def test_tampered_body_with_original_signature_is_401(core: SimpleNamespace) -> None:
    event = delivery("wh_issues_labeled.json")
    event["body"] = event["body"].replace("monalisa", "mallory")
    assert call(core, event) == rejected(401, "signature")
    assert items(core) == []


def test_unhandled_event_is_202_with_the_reason(core: SimpleNamespace) -> None:
    event = delivery("wh_issues_labeled.json", mutate=lambda p: p.update(action="milestoned"))
    assert call(core, event) == (202, {"status": "ignored", "reason": "issues.milestoned is not handled"})
    event = delivery("wh_ping.json")
    event["headers"]["X-GitHub-Event"] = "star"
    assert call(core, event) == (202, {"status": "ignored", "reason": "event 'star' is not handled"})
    assert items(core) == []


def test_bot_sender_is_ignored(core: SimpleNamespace) -> None:
    def bot(p: dict[str, Any]) -> None:
        p["sender"] = dict(p["sender"], login="renovate[bot]", type="Bot")

    assert call(core, delivery("wh_issues_labeled.json", mutate=bot)) == (
        202, {"status": "ignored", "reason": "sender is a bot"})
    assert items(core) == []


def test_malformed_payload_of_a_handled_event_is_400(core: SimpleNamespace) -> None:
    event = delivery("wh_issues_labeled.json", mutate=lambda p: p["issue"].pop("number"))
    assert call(core, event) == rejected(400, "issue.number")
    assert items(core) == []


# --- the Lambda entry point: settings and secrets -------------------------------------------


@pytest.fixture
def lambda_env(core: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setenv("GIP_PREFIX", core.settings.prefix)
    monkeypatch.setenv("REQUIRED_LABELS", "needs-reproduction")
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    webhook.reset()
    yield core
    webhook.reset()


def test_no_secret_configured_is_500_and_never_accepts(lambda_env: SimpleNamespace,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="handlers.webhook"):
        response = webhook.handler(delivery("wh_issues_labeled.json"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"status": "error", "reason": "webhook is not configured"}
    assert "webhook secret" in caplog.text and "refused" in caplog.text
    assert SECRET not in caplog.text
    assert items(lambda_env) == []


def test_empty_env_secret_is_not_a_secret(lambda_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", " , ")
    boto3.client("secretsmanager").create_secret(Name="test/webhook-secret", SecretString=" , ")
    assert webhook.handler(delivery("wh_issues_labeled.json"))["statusCode"] == 500


def test_env_secret_with_current_and_next(lambda_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", f"old-secret,{SECRET}")
    response = webhook.handler(delivery("wh_issues_labeled.json"))
    assert response["statusCode"] == 202
    assert len(log_of(lambda_env)) == 1


def test_secrets_manager_secret_is_read_once_per_container(lambda_env: SimpleNamespace) -> None:
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="test/webhook-secret", SecretString=f"{SECRET},next-secret")
    assert webhook.handler(delivery("wh_ping.json"))["statusCode"] == 200
    sm.update_secret(SecretId="test/webhook-secret", SecretString="rotated-away")
    assert webhook.handler(delivery("wh_ping.json"))["statusCode"] == 200  # cached
    webhook.reset()  # a new container reads the new value
    assert webhook.handler(delivery("wh_ping.json"))["statusCode"] == 401


# --- fuzz: no 5xx and no append on any invalid input ---------------------------------------


class NoAppend:
    """An Issues stand-in that fails the test if anything would be appended."""

    def __call__(self) -> NoAppend:
        return self

    def receive(self, **kw: Any) -> Any:
        raise AssertionError(f"receive called for invalid input: {kw.get('delivery_id')}")

    def cancel(self, *a: Any, **kw: Any) -> Any:
        raise AssertionError("cancel called for invalid input")


HEADER_NAMES = st.sampled_from(["X-GitHub-Event", "x-github-delivery", "X-HUB-SIGNATURE-256",
                                "Content-Type", "content-type", "X-Hub-Signature", "User-Agent"])
TEXT = st.text(max_size=80)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_, LABELED = recorded("wh_issues_labeled.json")


@st.composite
def invalid_requests(draw: st.DrawFn) -> dict[str, Any]:
    headers = draw(st.dictionaries(HEADER_NAMES | TEXT, TEXT, max_size=8))
    kind = draw(st.sampled_from(["bytes", "json", "signed-json", "signed-bytes"]))
    if kind in ("bytes", "signed-bytes"):
        body = draw(st.binary(max_size=300))
    else:
        body = compact(draw(JSON_VALUES))
    if kind.startswith("signed"):
        headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
        headers.setdefault("X-GitHub-Delivery", draw(TEXT))
        headers.setdefault("X-GitHub-Event", draw(st.sampled_from(["issues", "issue_comment", "ping", "x"])))
    event = proxy_event(headers, body, b64=draw(st.booleans()))
    if draw(st.booleans()):
        event["body"] = draw(st.one_of(st.none(), TEXT, st.integers()))
    return event


@st.composite
def broken_github_deliveries(draw: st.DrawFn) -> dict[str, Any]:
    """A real labeled delivery, validly signed, with its payload broken so it cannot qualify."""
    payload = copy.deepcopy(LABELED)
    target = draw(st.sampled_from(["issue", "label", "sender", "repository"]))
    breakage = draw(st.sampled_from(["drop", "retype", "bot"]))
    if breakage == "drop":
        payload.pop(target)
    elif breakage == "retype":
        payload[target] = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
    else:
        payload["sender"] = dict(payload["sender"], type="Bot", login=draw(TEXT) + "[bot]")
    if draw(st.booleans()):
        payload["issue"] = dict(LABELED["issue"], number=draw(st.one_of(st.text(), st.booleans(), st.integers(max_value=0))))
    headers, _ = recorded("wh_issues_labeled.json")
    body = compact(payload)
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    return proxy_event(headers, body)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(invalid_requests())
def test_fuzz_invalid_requests_never_5xx_and_never_append(event: dict[str, Any]) -> None:
    response = webhook_service.handle(event, rules=RULES, secrets=(SECRET,), max_bytes=4096, issues=NoAppend())
    assert response["statusCode"] in (200, 202, 400, 401, 413, 415)
    assert json.loads(response["body"])["status"] in ("ok", "ignored", "rejected")


@FUZZ
@given(broken_github_deliveries())
def test_fuzz_broken_github_payloads_never_5xx_and_never_append(event: dict[str, Any]) -> None:
    response = webhook_service.handle(event, rules=RULES, secrets=(SECRET,), max_bytes=1 << 20, issues=NoAppend())
    assert response["statusCode"] in (202, 400)


class Racing:
    """An Issues stand-in whose cancel loses ``conflicts`` races before it succeeds."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.calls = 0

    def cancel(self, repo: str, number: int, *, reason: str, cause: Cause) -> dict[str, Any]:
        from gip.errors import ConcurrencyConflict

        self.calls += 1
        if self.calls <= self.conflicts:
            raise ConcurrencyConflict(f"issue-{repo}#{number}", 3)
        return {"data": {"reason": reason, "run": 4}}


def closed_event() -> dict[str, Any]:
    def close(p: dict[str, Any]) -> None:
        p["action"], p["issue"]["state"] = "closed", "closed"

    return delivery("wh_issues_opened.json", mutate=close)


def test_cancel_that_loses_a_race_is_decided_again() -> None:
    racing = Racing(conflicts=1)
    response = webhook_service.handle(closed_event(), rules=RULES, secrets=(SECRET,), max_bytes=1 << 20,
                              issues=lambda: racing)
    assert (response["statusCode"], racing.calls) == (202, 2)
    assert json.loads(response["body"])["reason"] == "run 4 skipped (closed)"


def test_cancel_that_keeps_losing_races_is_500_so_github_can_redeliver() -> None:
    racing = Racing(conflicts=2)
    response = webhook_service.handle(closed_event(), rules=RULES, secrets=(SECRET,), max_bytes=1 << 20,
                              issues=lambda: racing)
    assert (response["statusCode"], racing.calls) == (500, 2)


def test_storage_failure_is_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def receive(self, **_: Any) -> Any:
            raise OSError("connection reset")

    with caplog.at_level(logging.ERROR, logger="gip.services.webhook"):
        response = webhook_service.handle(delivery("wh_issues_labeled.json"), rules=RULES, secrets=(SECRET,),
                                  max_bytes=1 << 20, issues=lambda: Down())
    assert response["statusCode"] == 500
    assert "5b8e9a20-16b1-11ef-9d1e-7f0c3b2a1e02" in caplog.text


# --- issue 19 §4: transfers, comment ids, secrets -------------------------------------------


def test_a_transferred_issue_cancels_its_waiting_run(core: SimpleNamespace) -> None:
    call(core, delivery("wh_issues_labeled.json"))

    def transfer(p: dict[str, Any]) -> None:
        p["action"] = "transferred"
        p["changes"] = {"new_issue": {"number": 3}, "new_repository": {"full_name": "octo/else"}}

    status, body = call(core, delivery("wh_issues_labeled.json", delivery_id="tr-1", mutate=transfer))
    assert (status, body["reason"]) == (202, "run 1 skipped (transferred)")


def test_a_command_resent_under_another_delivery_id_is_a_duplicate(core: SimpleNamespace) -> None:
    assert call(core, delivery("wh_issue_comment_created.json"))[1]["status"] == "accepted"
    # the signature does not cover X-GitHub-Delivery: the same signed body under a new id
    status, body = call(core, delivery("wh_issue_comment_created.json", delivery_id="replayed-1"))
    assert (status, body) == (202, {"status": "ignored", "reason": "duplicate delivery"})
    assert [e["type"] for e in log_of(core)] == ["IssueReceived"]


def test_webhook_secret_rotation_uses_two_settings_and_warns_on_the_comma_form(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert webhook_service.webhook_secrets("old", "new") == ("old", "new")
        assert "deprecated" not in caplog.text
        assert webhook_service.webhook_secrets("s3cret-a,s3cret-b") == ("s3cret-a", "s3cret-b", "s3cret-a,s3cret-b")
    assert "GITHUB_WEBHOOK_SECRET_NEXT" in caplog.text
    assert "s3cret" not in caplog.text  # the secret itself is never logged


def test_the_handler_reads_the_next_secret_from_its_own_setting(core: SimpleNamespace, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "has,a comma")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET_NEXT", SECRET)
    webhook.reset()
    try:
        assert webhook._secrets() == ("has,a comma", SECRET)
    finally:
        webhook.reset()
