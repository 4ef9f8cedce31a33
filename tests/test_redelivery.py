"""The redelivery sweep: pure rules, then the sweep against the fake GitHub App, moto in-process
and a real webhook endpoint (gip.services.webhook behind a local HTTP server)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.adapters.github.app import AppConfig, AppCredentials
from gip.adapters.github.client import RequestsTransport
from gip.adapters.github.hooks import HookApi, check_hook
from gip.domain import redelivery as rules
from gip.domain.qualify import Rules
from gip.domain.redelivery import HookDelivery
from gip.errors import UsageError
from gip.services import webhook
from gip.services.redelivery import Redelivery
from gip.store.dynamo_ops import DynamoRedeliveryMarks
from tests.conftest import empty_tables
from tests.fakes.github_app import FakeGitHubApp

EVENTS = Path(__file__).parent / "events"
SECRET = "redelivery-secret"
REPO_HOOK = "repos/octo-org/hello-world/hooks/12"
PAT = "ghp_hooks_admin"


def item(id_: int, guid: str, *, code: int = 502, event: str = "issues", ago: timedelta = timedelta(minutes=1),
         now: datetime = datetime(2026, 11, 29, 12, tzinfo=UTC)) -> HookDelivery:
    return HookDelivery(id=id_, guid=guid, delivered_at=now - ago, status="OK" if 200 <= code < 300 else f"HTTP {code}",
                        status_code=code, event=event)


# ---------------------------------------------------------------- pure

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_the_latest_attempt_decides_and_only_consumed_recent_refusable_events_qualify():
    listed = [
        item(10, "a", code=502), item(12, "a", code=202),  # failed, then redelivered OK
        item(11, "b", code=500), item(13, "b", code=0),  # failed twice: the latest (13) is sent
        item(14, "c", code=202),  # fine
        item(15, "d", event="push"),  # not ours
        item(16, "e", ago=timedelta(days=3, minutes=1)),  # outside GitHub's window
        item(17, "f", code=413), item(18, "g", code=400),  # our webhook refused it for good
        item(19, "h", code=401),  # a wrong secret: fixed, a redelivery helps
    ]
    assert [(d.guid, d.id) for d in rules.latest_failures(listed, now=NOW)] == [("b", 13), ("h", 19)]


def test_paging_stops_at_the_mark_or_the_window():
    page = [item(30, "x"), item(29, "y"), item(28, "z")]
    assert rules.above_mark(page, mark=28, since=NOW - rules.WINDOW) == rules.Page(page[:2], True)
    assert rules.above_mark(page, mark=None, since=NOW - rules.WINDOW) == rules.Page(page, False)
    old = [item(30, "x"), item(29, "y", ago=timedelta(hours=7))]
    assert rules.above_mark(old, mark=None, since=NOW - timedelta(hours=6)).fresh == old[:1]


def test_the_mark_moves_to_the_newest_but_stays_below_what_could_not_be_sent():
    listed = [item(40, "a"), item(41, "b"), item(45, "c")]
    assert rules.next_mark(None, listed) == 45
    assert rules.next_mark(30, listed, unsent=[listed[1]]) == 40
    assert rules.next_mark(50, listed) == 50 and rules.next_mark(7, []) == 7
    assert rules.attempts_requested(["WebhookRedeliveryRequested", "X", "WebhookRedeliveryRequested"]) == 2
    assert rules.at_cap(3) and not rules.at_cap(2)


def test_a_listed_item_is_read_or_refused():
    doc = {"id": 7, "guid": "0b9a3c80-7d42-11ee-8c99-0242ac120002", "delivered_at": "2026-11-29T11:59:00Z",
           "status": "Invalid HTTP Response: 502", "status_code": 502, "event": "issues", "action": "labeled"}
    parsed = HookDelivery.from_api(doc)
    assert parsed.failed and parsed.delivered_at == NOW - timedelta(minutes=1) and parsed.action == "labeled"
    assert not HookDelivery.from_api({**doc, "status": "OK", "status_code": 200}).failed
    assert HookDelivery.from_api({**doc, "status": "OK", "status_code": None}).failed  # no answer
    for bad in ({"guid": "../x"}, {"id": "7"}, {"delivered_at": None}):
        with pytest.raises(ValueError):
            HookDelivery.from_api({**doc, **bad})


def test_hook_specs_are_checked():
    assert check_hook("/repos/o/r/hooks/12/") == "repos/o/r/hooks/12"
    assert check_hook("orgs/acme/hooks/3") == "orgs/acme/hooks/3"
    for bad in ("repos/o/hooks/1", "repos/o/r/hooks/x", "users/u/hooks/1", "repos/../r/hooks/1"):
        with pytest.raises(UsageError):
            check_hook(bad)


# ---------------------------------------------------------------- the sweep


class Endpoint:
    """Our webhook (gip.services.webhook over moto) on a local port; ``down`` answers 502."""

    def __init__(self, core: SimpleNamespace) -> None:
        self.core, self.down, self.answers = core, False, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.down:
                    status, text = 502, b"down"
                else:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    event = {"headers": headers, "body": body.decode(), "isBase64Encoded": False}
                    resp = webhook.handle(event, rules=Rules(required_labels=["needs-reproduction"]),
                                          secrets=(SECRET,), max_bytes=1 << 20, issues=lambda: outer.core.issues)
                    status, text = resp["statusCode"], resp["body"].encode()
                outer.answers.append((status, json.loads(text) if text.startswith(b"{") else text))
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"


@pytest.fixture
def core(shared_core: SimpleNamespace) -> SimpleNamespace:
    core = empty_tables(shared_core)
    ddb = boto3.client("dynamodb")
    for row in ddb.scan(TableName=core.settings.pool_table, ProjectionExpression="pk")["Items"]:
        ddb.delete_item(TableName=core.settings.pool_table, Key=row)
    return core


@pytest.fixture
def endpoint(core: SimpleNamespace) -> Iterator[Endpoint]:
    ep = Endpoint(core)
    yield ep
    ep.server.shutdown()
    ep.server.server_close()


@pytest.fixture
def gh(endpoint: Endpoint) -> Iterator[FakeGitHubApp]:
    server = FakeGitHubApp(app_id=4242, pat=PAT, webhook_url=endpoint.url, webhook_secret=SECRET).start()
    try:
        yield server
    finally:
        server.stop()


def payload(number: int = 42, installation: int = 77) -> dict[str, Any]:
    doc = json.loads((EVENTS / "wh_issues_labeled.json").read_text())["payload"]
    doc["issue"]["number"] = number
    doc["installation"] = {"id": installation}
    return doc


def sweeper(core: SimpleNamespace, gh: FakeGitHubApp, *hooks: str) -> Redelivery:
    creds = AppCredentials(AppConfig(str(gh.app_id), gh.private_key_pem), base_url=gh.url)
    transport = RequestsTransport()
    apis = [HookApi("app", gh.url, creds.jwt, transport, sleep=lambda s: None)]
    apis += [HookApi(h, gh.url, lambda: PAT, transport, sleep=lambda s: None) for h in hooks]
    return Redelivery(store=core.store, marks=DynamoRedeliveryMarks(core.settings.pool_table), hooks=apis)


def issue_events(core: SimpleNamespace, number: int = 42) -> list[str]:
    repo = payload()["repository"]["full_name"]
    return [e["type"] for e in core.store.read(f"issue-{repo}#{number}")]


def test_a_failed_delivery_is_redelivered_processed_once_and_never_twice(core, gh, endpoint):
    failed = gh.record_delivery("issues", payload(), status_code=502)  # GitHub gave up on it
    sweep = sweeper(core, gh)
    [report] = sweep.sweep()
    assert [r["guid"] for r in report.redelivered] == [failed["guid"]]
    assert report.calls == 2 and report.pages == 1  # one page, one POST …/attempts
    assert gh.auth_kinds() == ["jwt", "jwt"]
    # GitHub re-posted it, signed: our webhook stored it
    assert endpoint.answers[-1][0] == 202 and issue_events(core) == ["IssueReceived"]
    [requested] = core.store.read(f"delivery-{failed['guid']}")
    assert requested["type"] == "WebhookRedeliveryRequested" and requested["correlation_id"] == failed["guid"]
    assert requested["data"] | {} == {**requested["data"], "attempt": 1, "status_code": 502,
                                      "delivery_id": failed["id"], "hook": "app"}
    assert [a["redelivery"] for a in gh.attempts(failed["guid"])] == [True, False]
    # the next sweeps: the latest attempt is OK now, nothing more
    assert sweep.sweep()[0].redelivered == [] and sweep.sweep()[0].redelivered == []
    assert len(gh.attempts(failed["guid"])) == 2 and issue_events(core) == ["IssueReceived"]
    assert len(core.store.read(f"delivery-{failed['guid']}")) == 1


def test_an_ok_delivery_is_never_touched_and_a_quiet_sweep_is_one_request(core, gh, endpoint):
    ok = gh.deliver("issues", payload())  # really sent: 202
    assert ok["status"] == "OK" and issue_events(core) == ["IssueReceived"]
    sweep = sweeper(core, gh)
    for _ in range(3):
        [report] = sweep.sweep()
        assert report.redelivered == [] and report.calls == 1 and report.pages == 1
    assert [r.method for r in gh.requests if "/deliveries" in r.path] == ["GET"] * 3
    assert core.store.read(f"delivery-{ok['guid']}") == [] and len(gh.attempts(ok["guid"])) == 1


def test_a_redelivered_guid_we_had_stored_is_a_duplicate_at_the_webhook(core, gh, endpoint):
    """GitHub saw a timeout, but we had stored it: the redelivery changes nothing."""
    sent = gh.deliver("issues", payload())
    gh.record_delivery("issues", payload(), status_code=0, guid=sent["guid"])  # its "timeout"
    [report] = sweeper(core, gh).sweep()
    assert len(report.redelivered) == 1
    assert endpoint.answers[-1] == (202, endpoint.answers[-1][1]) and "duplicate" in json.dumps(endpoint.answers[-1][1])
    assert issue_events(core) == ["IssueReceived"]


def test_a_guid_at_its_attempt_cap_is_left_alone_with_a_log_line(core, gh, endpoint, caplog):
    failed = gh.record_delivery("issues", payload(), status_code=502)
    endpoint.down = True  # every redelivery fails too
    sweep = sweeper(core, gh)
    for attempt in (1, 2, 3):
        assert [r["attempt"] for r in sweep.sweep()[0].redelivered] == [attempt]
    with caplog.at_level(logging.WARNING, logger="gip.services.redelivery"):
        [report] = sweep.sweep()
    assert report.redelivered == [] and report.at_cap == [failed["guid"]]
    assert f"delivery {failed['guid']} (issues) left alone: 3 redeliveries requested already" in caplog.text
    assert len(gh.attempts(failed["guid"])) == 4  # the original and three redeliveries
    assert [e["data"]["attempt"] for e in core.store.read(f"delivery-{failed['guid']}")] == [1, 2, 3]


def test_dry_run_changes_nothing(core, gh, endpoint):
    failed = gh.record_delivery("issues", payload(), status_code=502)
    sweep = sweeper(core, gh)
    [report] = sweep.sweep(dry_run=True)
    assert [r["guid"] for r in report.redelivered] == [failed["guid"]]
    assert not any(r.method == "POST" for r in gh.requests)
    assert core.store.read(f"delivery-{failed['guid']}") == [] and endpoint.answers == []
    assert DynamoRedeliveryMarks(core.settings.pool_table).get("app") is None
    assert [r["guid"] for r in sweep.sweep()[0].redelivered] == [failed["guid"]]  # still there


def test_pages_follow_the_cursor_and_stop_at_the_durable_mark(core, gh, endpoint):
    for _ in range(250):
        gh.record_delivery("issues", payload(), status_code=202, delivered_at=None)
    [first] = sweeper(core, gh).sweep()
    assert (first.listed, first.pages, first.calls) == (250, 3, 3)
    assert any("cursor=" in r.query.get("cursor", "") or r.query.get("cursor") for r in gh.requests)
    for _ in range(5):
        gh.record_delivery("issues", payload(), status_code=202)
    failed = gh.record_delivery("issue_comment", payload(), status_code=504)
    [second] = sweeper(core, gh).sweep()  # a new container: the mark comes from DynamoDB
    assert (second.listed, second.pages) == (6, 1)
    assert second.mark_before == first.mark_after and [r["guid"] for r in second.redelivered] == [failed["guid"]]
    [since] = sweeper(core, gh).sweep(since=timedelta(hours=6), dry_run=True)  # --since ignores the mark
    assert since.listed == 257 and since.pages == 3


def test_app_hook_and_a_pat_repository_hook_side_by_side(core, gh, endpoint):
    on_app = gh.record_delivery("issues", payload(number=1), status_code=502)
    on_repo = gh.record_delivery("issues", payload(number=2), status_code=503, hook=REPO_HOOK)
    app_report, repo_report = sweeper(core, gh, REPO_HOOK).sweep()
    assert [r["guid"] for r in app_report.redelivered] == [on_app["guid"]]
    assert [r["guid"] for r in repo_report.redelivered] == [on_repo["guid"]]
    assert core.store.read(f"delivery-{on_repo['guid']}")[0]["data"]["hook"] == REPO_HOOK
    assert sorted(set(gh.auth_kinds())) == ["jwt", "pat"]
    assert issue_events(core, 1) == ["IssueReceived"] and issue_events(core, 2) == ["IssueReceived"]


def test_a_github_error_leaves_the_mark_and_the_next_sweep_catches_up(core, gh, endpoint):
    failed = gh.record_delivery("issues", payload(), status_code=502)
    gh.fail_next(500, n=2, path_contains="/attempts")  # both tries of the request
    sweep = sweeper(core, gh)
    [report] = sweep.sweep()
    assert report.redelivered == [] and report.mark_after == failed["id"] - 1
    gh.fail_next(401, path_contains="/hook/deliveries", method="GET")
    assert "401" in sweep.sweep()[0].error
    assert sweep.sweep()[0].redelivered == []  # within the listing grace: maybe another sweep's, in flight
    sweep.clock = lambda: datetime.now(UTC) + rules.LISTING_GRACE  # the next scheduled sweep
    [again] = sweep.sweep()
    assert [r["attempt"] for r in again.redelivered] == [2]  # the first request was recorded
    assert issue_events(core) == ["IssueReceived"]


def test_the_cli_dry_run_then_redeliver(core, gh, endpoint, monkeypatch, capsys):
    from gip.cli.main import main

    failed = gh.record_delivery("issues", payload(), status_code=502)
    on_repo = gh.record_delivery("issues", payload(number=2), status_code=500, hook=REPO_HOOK)
    for name, value in {"GIP_PREFIX": "test", "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": PAT,
                        "GITHUB_APP_ID": str(gh.app_id), "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem}.items():
        monkeypatch.setenv(name, value)
    assert main(["redeliver", "--dry-run", "--format", "json", "--redeliver-hooks", REPO_HOOK]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and [[r["guid"] for r in h["redelivered"]] for h in doc["hooks"]] == [
        [failed["guid"]], [on_repo["guid"]]]
    assert not any(r.method == "POST" for r in gh.requests) and endpoint.answers == []
    assert main(["redeliver", "--redeliver-hooks", REPO_HOOK]) == 0
    out = capsys.readouterr().out
    assert "app: 1 deliveries listed on 1 page(s), 1 failed, 1 redelivered" in out and failed["guid"] in out
    assert issue_events(core, 42) == ["IssueReceived"] and issue_events(core, 2) == ["IssueReceived"]
    assert PAT not in out and "BEGIN" not in out
    assert main(["redeliver", "--since", "yesterday-ish"]) == 2
    assert "--since must be an age" in capsys.readouterr().err
    gh.fail_next(500, n=10, path_contains="/hook/deliveries")
    assert main(["redeliver", "--format", "json"]) == 1  # a hook that could not be swept


def test_locally_the_sweep_runs_on_the_schedule_but_at_most_every_30_s():
    from gip.local.aws_setup import Schedule
    from gip.local.lambdas import Function
    from gip.local.schedules import build_jobs

    calls: list[str] = []
    functions = {f"arn:{n}": Function(n, f"arn:{n}", f"handlers.{n}.handler") for n in ("redeliver", "sweeper")}
    schedules = [Schedule(f"p-{n}-schedule", f"arn:rule/{n}", 900, (f"arn:{n}",)) for n in ("redeliver", "sweeper")]
    jobs = build_jobs(schedules, functions=functions, load=lambda f: lambda e, c: calls.append(f.name),
                      sqs=None, queue_url=str, account="123456789012", region="us-east-1")
    assert {j.name: j.period_s for j in jobs} == {"p-redeliver-schedule": 30.0, "p-sweeper-schedule": 2.0}
    jobs[0].run()
    assert calls == ["redeliver"]


def test_the_handler_sweeps_from_the_environment(core, gh, endpoint, monkeypatch):
    from handlers import redeliver
    from tests.conftest import new_container

    failed = gh.record_delivery("issues", payload(), status_code=502)
    for name, value in {"GIP_PREFIX": "test", "GITHUB_API_URL": gh.url, "REDELIVER_HOOKS": REPO_HOOK,
                        "GITHUB_TOKEN": PAT, "GITHUB_APP_ID": str(gh.app_id),
                        "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem}.items():
        monkeypatch.setenv(name, value)
    new_container(monkeypatch, redeliver)
    result = redeliver.handler({"detail-type": "Scheduled Event"}, None)
    assert [h["hook"] for h in result["hooks"]] == ["app", REPO_HOOK]
    assert [r["guid"] for r in result["hooks"][0]["redelivered"]] == [failed["guid"]]
    assert redeliver.handler({}, None)["hooks"][0]["redelivered"] == []  # same container: the mark moved


def test_two_sweeps_at_once_redeliver_a_guid_once(core, gh, endpoint):
    """The append is conditional on the stream's version: the sweep that loses does not POST."""
    from gip.domain.envelope import Cause, new_event

    failed = gh.record_delivery("issues", payload(), status_code=502)

    class OtherSweepWinsTheRace:
        def read(self, stream: str, **kw: Any) -> list:
            events = core.store.read(stream, **kw)
            data = {"guid": failed["guid"], "delivery_id": failed["id"], "hook": "app", "attempt": 1, "status_code": 502}
            core.store.append(stream, len(events), [new_event(rules.REQUESTED, stream=stream, data=data,
                                                              cause=Cause(failed["guid"], "other-sweep"))])
            return events

        def append(self, *args: Any, **kw: Any) -> list:
            return core.store.append(*args, **kw)

    sweep = sweeper(core, gh)
    sweep.store = OtherSweepWinsTheRace()
    [report] = sweep.sweep()
    assert report.redelivered == [] and not any(r.method == "POST" for r in gh.requests)
    assert [e["actor"] for e in core.store.read(f"delivery-{failed['guid']}")] == ["other-sweep"]


def test_the_cli_finds_a_deployed_app_in_its_secret(core, gh, endpoint, monkeypatch, capsys):
    from gip.cli.main import main

    failed = gh.record_delivery("issues", payload(), status_code=502)
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="test/github-app", SecretString=json.dumps({"app_id": gh.app_id, "private_key": gh.private_key_pem}))
    try:
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        assert main(["redeliver", "--prefix", "test", "--format", "json"]) == 0
        [app] = json.loads(capsys.readouterr().out)["hooks"]
        assert app["hook"] == "app" and [r["guid"] for r in app["redelivered"]] == [failed["guid"]]
    finally:
        sm.delete_secret(SecretId="test/github-app", ForceDeleteWithoutRecovery=True)


def test_a_broken_app_secret_is_a_config_error_on_each_sweep_never_a_traceback(core, gh, caplog):
    from gip.services.redelivery import from_settings

    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="test/github-app", SecretString='{"app_id": 1, "private_key": "not a key"}')
    try:
        with caplog.at_level(logging.ERROR):
            sweep = from_settings(core.settings, env={"AWS_LAMBDA_FUNCTION_NAME": "test-redeliver"})
        assert "ConfigError: the GitHub App private key is not a PEM private key" in caplog.text
        [report] = sweep.sweep()
        assert report.hook == "app" and "not a PEM private key" in report.error and report.calls == 0
    finally:
        sm.delete_secret(SecretId="test/github-app", ForceDeleteWithoutRecovery=True)


def test_a_request_another_sweep_made_is_not_made_again_while_github_has_not_listed_it(core, gh, endpoint):
    """Two sweeps one after the other (the CLI and the schedule): the second reads the first's
    WebhookRedeliveryRequested, while GitHub's listing still shows the failed attempt as the latest
    (the redelivery not listed yet). Each failed attempt is redelivered once: no second POST."""
    from gip.domain.envelope import Cause, new_event

    failed = gh.record_delivery("issues", payload(), status_code=502)
    stream = f"delivery-{failed['guid']}"
    data = {"guid": failed["guid"], "delivery_id": failed["id"], "hook": "app", "attempt": 1, "status_code": 502}
    core.store.append(stream, 0, [new_event(rules.REQUESTED, stream=stream, data=data,
                                            cause=Cause(failed["guid"], "other-sweep"))])
    [report] = sweeper(core, gh).sweep()
    assert report.failed == 1 and report.redelivered == [] and report.at_cap == []
    assert not any(r.method == "POST" for r in gh.requests) and len(gh.attempts(failed["guid"])) == 1
    assert [e["actor"] for e in core.store.read(stream)] == ["other-sweep"]
    # a later failed attempt of the same GUID is a new failure: it is redelivered (attempt 2)
    again = gh.record_delivery("issues", payload(), status_code=504, guid=failed["guid"])
    [report] = sweeper(core, gh).sweep(since=timedelta(hours=1))
    assert [(r["delivery_id"], r["attempt"]) for r in report.redelivered] == [(again["id"], 2)]
