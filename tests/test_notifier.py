"""Notifier: pure plans, then one status comment per issue on the in-memory store (moto where the
handler builds its service from the environment) + the fake GitHub."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from gip.adapters.github.client import GitHubClient
from gip.config import Settings
from gip.domain.comment import GITHUB_LIMIT, STATUS_MARKER, UNTRUSTED_MARKER
from gip.domain.envelope import Cause
from gip.domain.issue import Issue
from gip.errors import ConfigError
from gip.services import notifier as notifier_service
from gip.services.notifier import Notifier, Plan, plan_for
from handlers import notifier
from tests import service_fixtures
from tests.conftest import new_container
from tests.fakes import fixtures
from tests.fakes.bus import sqs_batch

github_server = fixtures.github_server
core, dynamo_core, t = service_fixtures.core, service_fixtures.dynamo_core, service_fixtures.t
REPO, NUMBER = "octo-org/hello-world", 42
LABEL = "needs-reproduction"
ACCOUNT = "111122223333"


@pytest.fixture
def gh(github_server):
    github_server.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    return github_server


def make_notifier(core, gh, t, *, token: str | None = "test-token", out=print, **kw) -> Notifier:
    client = None
    if token:
        client = GitHubClient(base_url=gh.url, token=token, sleep=t.sleep, clock=t.clock,
                              rand=lambda: 1.0, write_interval_s=0, max_attempts=kw.pop("attempts", 5))
    return Notifier(issues=core.issues, github=client, settings=Settings.for_prefix("test", **kw),
                    out=out)


class Run:
    """Drives one issue through the core, as the webhook, gatekeeper and worker would."""

    def __init__(self, core, *, delivery: str = "d-1", labels: list[str] | None = None) -> None:
        self.core, self.delivery = core, delivery
        data = {"repo": REPO, "number": NUMBER, "title": "A bug", "labels": labels or [LABEL],
                "trigger": "labeled", "sender": "mia", "html_url": "https://github.com/x"}
        result = core.issues.receive(delivery_id=delivery, repo=REPO, number=NUMBER, data=data,
                                     cause=self.cause)
        assert result.appended
        self.run = result.event["data"]["run"]
        self.events: list[dict] = [result.event]

    @property
    def cause(self) -> Cause:
        return Cause(correlation_id=self.delivery, actor="test")

    def record(self, type_: str, **data: Any) -> dict:
        event = self.core.issues.record(REPO, NUMBER, type_, {"run": self.run, **data}, cause=self.cause)
        self.events.append(event)
        return event

    def queued(self) -> dict:
        return self.record("IssueQueued", sender="mia", permission="write")

    def started(self) -> dict:
        return self.record("IssueProcessingStarted", account_id=ACCOUNT, lease_id="l-1", worker="w-1")

    def processed(self, **kw: Any) -> dict:
        data = dict(verdict="reproduced", exit_code=1, duration_s=12.5,
                    result_uri="s3://results/octo-org/hello-world/42/1/result.json",
                    log_tail="Traceback (most recent call last):\nValueError: boom")
        data.update(kw)
        return self.record("IssueProcessed", **data)


def status_comments(gh) -> list[dict]:
    return [c for c in gh.comments(REPO, NUMBER) if STATUS_MARKER in c["body"]]


def handle(n: Notifier, envelopes: list[dict]) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(notifier, "_service", lambda: n)
        return notifier.handler(sqs_batch(envelopes), None)


# ---------------------------------------------------------------- pure


def issue(**kw: Any) -> Issue:
    base = dict(stream=f"issue-{REPO}#{NUMBER}", repo=REPO, number=NUMBER, status="QUEUED",
                version=2, run=1, sender="mia")
    base.update(kw)
    return Issue(**base)


def test_plans_follow_the_state():
    assert plan_for(issue(), None).status.state == "queued"
    assert plan_for(issue(status="RECEIVED"), None).status is None
    done = plan_for(issue(status="PROCESSED", verdict="not_reproduced", exit_code=0,
                          duration_s=1.0, result_uri="s3://b/k"), {"log_tail": "ok"})
    assert (done.status.verdict, done.status.log_tail, done.label) == ("not_reproduced", "ok", "not-reproduced")
    retry = plan_for(issue(status="FAILED", error="lost", retryable=True, attempt=1), None)
    assert retry.status.state == "retrying" and retry.label is None
    final = plan_for(issue(status="FAILED", error="lost", retryable=False, attempt=3), None)
    assert final.status.state == "failed" and final.label == "repro-infra-error"
    untrusted = plan_for(issue(status="SKIPPED", reason="untrusted_sender"),
                         {"sender": "eve", "permission": "triage"}, explain_untrusted=True)
    assert untrusted.untrusted == ("eve", "triage") and untrusted.status is None
    assert plan_for(issue(status="SKIPPED", reason="untrusted_sender"), {"sender": "eve"}) == Plan()
    closed = plan_for(issue(status="SKIPPED", reason="closed"), None)
    assert closed.status.reason == "closed" and not closed.create


# ---------------------------------------------------------------- shell


def test_one_status_comment_is_edited_across_a_full_run(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    assert n.handle(run.queued()) == "no_status_comment"  # the 👀 says queued
    assert gh.reactions(REPO, NUMBER) == ["eyes"] and status_comments(gh) == []
    assert n.handle(run.started()) == "created"
    first = status_comments(gh)
    assert len(first) == 1 and "Running" in first[0]["body"] and "| Run | 1 |" in first[0]["body"]
    assert n.handle(run.processed()).startswith("edited,labels")
    [comment] = status_comments(gh)
    assert comment["id"] == first[0]["id"]
    body = comment["body"]
    for expected in ("Reproduced", "`1`", "| Duration | 12s |", "ValueError: boom", "s3://results/octo-org"):
        assert expected in body
    assert gh.labels(REPO, NUMBER) == ["bug", LABEL, "reproduced"]
    creates = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert len(creates) == 1


def test_redelivered_events_edit_never_add_and_an_older_event_does_not_go_back(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    queued, started, processed = run.queued(), run.started(), run.processed()
    result = handle(n, [queued, started, processed, queued, started])
    assert result == {"batchItemFailures": []}
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"] and "Queued" not in comment["body"]
    # redelivery of the whole batch: nothing is written at all
    gh.reset_requests()
    handle(n, [processed, queued])
    assert [r for r in gh.requests if r.is_write] == []


def test_a_comment_showing_a_newer_version_is_not_overwritten(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued()
    queued = run.started()
    n.handle(queued)
    [comment] = status_comments(gh)
    newer = comment["body"].replace("version=3 run=1 -->", "version=9 run=1 -->")
    assert newer != comment["body"]
    n.github.edit_comment(REPO, comment["id"], newer)  # as if a newer notifier had written
    run.processed()
    cold = make_notifier(core, gh, t)  # another container: it lists and sees the newer one
    assert cold.handle(queued).startswith("newer_shown")
    assert status_comments(gh)[0]["body"] == newer


def test_the_remembered_comment_obeys_the_same_version_check():
    status = plan_for(issue(version=3, status="RUNNING"), None)
    body = notifier_service.render_status(status.status)
    older = body.replace("version=3 run=1 -->", "version=2 run=1 -->")
    newer = body.replace("version=3 run=1 -->", "version=9 run=1 -->")
    assert older != body != newer
    assert notifier_service.status_step(body, body, status) == "unchanged"
    assert notifier_service.status_step(newer, body, status) == "newer_shown"
    assert notifier_service.status_step(older, body, status) == "edit"
    assert notifier_service.status_step(None, body, status) == "create"
    other_run = plan_for(issue(version=3, run=2, status="SKIPPED", reason="closed"), None)
    assert notifier_service.status_step(older, "x", other_run) == "other_run_shown"
    assert notifier_service.status_step(None, "x", other_run) == "no_status_comment"


def test_only_our_own_comment_with_the_marker_is_edited(core, gh, t):
    gh.add_comment(REPO, NUMBER, f"quoting the bot: {STATUS_MARKER} ha", login="mallory")
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued()
    assert n.handle(run.started()) == "created"
    mallory = [c for c in gh.comments(REPO, NUMBER) if c["user"]["login"] == "mallory"]
    assert mallory[0]["body"] == f"quoting the bot: {STATUS_MARKER} ha"
    assert len([c for c in status_comments(gh) if c["user"]["login"] == "gip-bot"]) == 1


def restored(core) -> Run:
    """A second run with no status record (as after a restore): the notifier must list."""
    Run(core).record("IssueSkipped", reason="closed")
    return Run(core, delivery="d-2")


def test_our_identity_comes_from_get_user_once_when_a_listing_needs_it(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), restored(core)
    n.handle(run.queued())
    n.handle(run.started())
    assert len([r for r in gh.requests if r.path == "/user"]) == 1
    assert calls(gh).count("GET /issues/{n}/comments") == 1  # no record: listed once
    gh.reset_requests()
    other = make_notifier(core, gh, t, bot_login="gip-bot")  # a cold container: the record
    assert other.handle(run.events[-1]) == "unchanged"
    assert other.handle(run.events[-1]) == "unchanged"
    assert calls(gh) == ["GET /issues/comments/{n}"]  # read by id once; no /user, no listing


def test_untrusted_sender_is_told_politely_once(core, gh, t):
    n, run = make_notifier(core, gh, t, explain_untrusted=True), Run(core)
    skipped = run.record("IssueSkipped", reason="untrusted_sender", sender="eve", permission="read")
    assert n.handle(skipped) == "told_untrusted"
    assert n.handle(skipped) == "already_told"
    notes = [c for c in gh.comments(REPO, NUMBER) if UNTRUSTED_MARKER in c["body"]]
    assert len(notes) == 1
    assert "@eve" in notes[0]["body"] and "`read`" in notes[0]["body"]
    assert status_comments(gh) == []


def test_a_cancelled_run_edits_the_status_comment_to_skipped(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued()
    n.handle(run.started())
    n.handle(run.processed())
    second = Run(core, delivery="d-2")
    n.handle(second.queued())  # the earlier run's comment is brought up to date
    assert "Queued" in status_comments(gh)[0]["body"] and gh.reactions(REPO, NUMBER) == ["eyes"]
    n.handle(second.record("IssueSkipped", reason="closed"))
    [comment] = status_comments(gh)
    assert "Skipped" in comment["body"] and "the issue was closed" in comment["body"]


def test_a_verdict_label_replaces_the_other_verdict_labels(core, gh, t):
    earlier = [LABEL, "repro-infra-error", "not-reproduced"]
    gh.set_labels(REPO, NUMBER, earlier)
    n, run = make_notifier(core, gh, t), Run(core, labels=earlier)  # the labels at trigger time
    n.handle(run.queued()), n.handle(run.started())
    gh.reset_requests()
    assert n.handle(run.processed(verdict="broken_repro", exit_code=2)) == "edited,labels+1-2"
    assert gh.labels(REPO, NUMBER) == [LABEL, "repro-broken"]
    assert [r for r in gh.requests if r.method == "GET" and "/issues" in r.path] == []  # no GET issue, no listing


def test_verdict_labels_come_from_the_trigger_time_labels_not_from_get_issue(core, gh, t):
    # trade-off: verdict labels changed by hand during the run are not seen (the comment
    # still shows the verdict)
    n, run = make_notifier(core, gh, t), Run(core, labels=[LABEL, "reproduced"])
    run.queued(), run.started()
    gh.set_labels(REPO, NUMBER, [LABEL, "not-reproduced"])  # the earlier label went, one came
    assert n.handle(run.processed()) == "created,labels+0-0"  # "reproduced" was there at trigger
    assert gh.labels(REPO, NUMBER) == [LABEL, "not-reproduced"]
    n2, second = make_notifier(core, gh, t), Run(core, delivery="d-2", labels=[LABEL, "reproduced"])
    second.queued(), second.started()
    gh.set_labels(REPO, NUMBER, [LABEL])  # removed by hand meanwhile: the DELETE 404 is fine
    assert n2.handle(second.processed(verdict="not_reproduced", exit_code=0)) == "edited,labels+1-1"
    assert gh.labels(REPO, NUMBER) == [LABEL, "not-reproduced"]
    assert [r for r in gh.requests if r.method == "GET" and r.path.endswith(f"/issues/{NUMBER}")] == []


def test_a_final_infra_error_gets_its_label_but_a_retryable_one_does_not(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued(), run.started()
    n.handle(run.record("IssueProcessingFailed", error="worker lost", retryable=True, attempt=1))
    assert "retrying" in status_comments(gh)[0]["body"] and "repro-infra-error" not in gh.labels(REPO, NUMBER)
    run.started()
    n.handle(run.record("IssueProcessingFailed", error="no account", retryable=False, attempt=2))
    assert "Infrastructure error" in status_comments(gh)[0]["body"]
    assert "repro-infra-error" in gh.labels(REPO, NUMBER)


def test_a_github_outage_never_loses_the_verdict(core, gh, t):
    n, run = make_notifier(core, gh, t, attempts=2), Run(core)
    run.queued()
    n.handle(run.started())
    processed = run.processed()
    gh.fail_next(500, 2)  # both attempts of the first GitHub call
    assert handle(n, [processed]) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert "Running" in status_comments(gh)[0]["body"]
    assert core.issues.get(REPO, NUMBER).verdict == "reproduced"  # the log still has it
    assert handle(n, [processed]) == {"batchItemFailures": []}  # SQS brings it back
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"] and "reproduced" in gh.labels(REPO, NUMBER)


def test_403_with_retry_after_then_success(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    gh.fail_next(403, 1, {"Retry-After": "5"}, method="POST")
    run.queued()
    assert n.handle(run.started()) == "created"
    assert t.sleeps == [5.0] and len(status_comments(gh)) == 1


def test_a_500_storm_then_success(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    gh.fail_next(502, 4)
    run.queued()
    assert n.handle(run.started()) == "created"
    assert t.sleeps == [0.5, 1.0, 2.0, 4.0] and len(status_comments(gh)) == 1


def test_a_body_that_would_exceed_65536_characters_is_posted_truncated(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued(), run.started()
    huge = "\n".join(f"{i:04d} " + "x" * 4_000 for i in range(40)) + "\nTHE END"
    n.handle(run.processed(log_tail=huge))
    [comment] = status_comments(gh)
    assert len(comment["body"]) < GITHUB_LIMIT
    assert "THE END" in comment["body"] and "characters truncated" in comment["body"]


def test_secrets_in_the_log_tail_are_not_posted(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    run.queued(), run.started()
    n.handle(run.processed(log_tail="AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
    assert "wJalrXUtnFEMI" not in status_comments(gh)[0]["body"]


def test_a_late_event_renders_the_latest_state_with_its_log_tail(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    queued = run.queued()
    run.started(), run.processed(log_tail="from the processed event")
    assert n.handle(queued) == "created,labels+1-0"
    assert "from the processed event" in status_comments(gh)[0]["body"]


def test_local_mode_without_token_prints_what_it_would_post(core, gh, t):
    printed: list[str] = []
    n, run = make_notifier(core, gh, t, token=None, out=printed.append), Run(core)
    run.queued(), run.started()
    assert n.handle(run.processed()) == "printed"
    text = "\n".join(printed)
    assert STATUS_MARKER in text and "Reproduced" in text and "'reproduced'" in text
    assert gh.requests == []


def test_print_mode_prints_each_change_once_as_the_github_path_would_send_it(core, gh, t):
    printed: list[str] = []
    n, run = make_notifier(core, gh, t, token=None, out=printed.append), Run(core)
    events = [run.queued(), run.started(), run.processed()]  # the run ended before the notifier ran
    assert [n.handle(e) for e in events] == ["printed", "printed_already", "printed_already"]
    assert sum("would set label 'reproduced'" in p for p in printed) == 1
    assert sum("status comment would read" in p for p in printed) == 1 and "Reproduced" in printed[0]
    assert n.handle(events[-1]) == "printed_already" and len(printed) == 2  # a redelivery


def test_print_mode_prints_each_new_state_of_a_run_as_it_comes(core, gh, t):
    printed: list[str] = []
    n, run = make_notifier(core, gh, t, token=None, out=printed.append), Run(core)
    assert n.handle(run.queued()) == "printed"
    started = run.started()
    assert n.handle(started) == "printed"
    assert n.handle(started) == "printed_already"  # SQS delivered it twice
    assert n.handle(run.processed()) == "printed"
    states = [p for p in printed if "status comment would read" in p]
    assert len(states) == 3 and len({*states}) == 3  # queued, running, processed: each once
    assert sum("would set label" in p for p in printed) == 1
    assert gh.requests == []


def test_handler_builds_from_the_environment_and_never_logs_the_token(dynamo_core, gh, monkeypatch, caplog):
    core = dynamo_core  # the handler builds its store from the environment: the tables
    run = Run(core)
    run.queued()
    queued = run.started()
    monkeypatch.setenv("GIP_PREFIX", "test")
    monkeypatch.setenv("GITHUB_API_URL", gh.url)
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    new_container(monkeypatch, notifier)
    gh.fail_next(422, 1, method="POST")  # a failure path logs; the token must not be in it
    with caplog.at_level("DEBUG"):
        assert notifier.handler(sqs_batch([queued]), None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
        assert notifier.handler(sqs_batch([queued]), None) == {"batchItemFailures": []}
    assert len(status_comments(gh)) == 1
    assert "test-token" not in caplog.text


def test_a_new_run_skipped_before_it_was_queued_keeps_the_last_verdict(core, gh, t):
    n, first = make_notifier(core, gh, t), Run(core)
    first.queued(), first.started()
    n.handle(first.processed())
    second = Run(core, delivery="d-2")
    assert second.run == 2
    assert n.handle(second.record("IssueSkipped", reason="closed")) == "other_run_shown"
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"] and "Skipped" not in comment["body"]


def test_an_issue_gone_from_github_is_not_retried_forever(core, github_server, t):
    n, run = make_notifier(core, github_server, t), Run(core)  # the fake has no such issue
    run.queued()
    assert handle(n, [run.started()]) == {"batchItemFailures": []}
    assert n.handle(run.events[-1]) == "issue_gone"


def test_gatekeeper_then_notifier_over_one_github(core, gh, t):
    """GIVEN a trusted labeller WHEN the gatekeeper queues and the worker finishes
    THEN GitHub shows 👀, one status comment with the verdict, and one verdict label."""
    from gip.services.gatekeeper import Gatekeeper

    gh.set_permission(REPO, "mia", "write")
    run = Run(core)
    client = GitHubClient(base_url=gh.url, token="test-token", sleep=t.sleep, clock=t.clock,
                          write_interval_s=0)
    settings = Settings.for_prefix("test")
    assert Gatekeeper(issues=core.issues, github=client, settings=settings).handle(run.events[0]) == "IssueQueued"
    n = Notifier(issues=core.issues, github=client, settings=settings)
    queued = core.store.read(f"issue-{REPO}#{NUMBER}")[-1]
    run.events.append(queued)
    assert n.handle(queued) == "no_status_comment"  # 👀 only
    run.started()
    done = run.processed(verdict="not_reproduced", exit_code=0)
    assert n.handle(done) == "created,labels+1-0"
    assert gh.reactions(REPO, NUMBER) == ["eyes"]
    [comment] = status_comments(gh)
    assert "Not reproduced" in comment["body"]
    assert gh.labels(REPO, NUMBER) == ["bug", LABEL, "not-reproduced"]


def test_a_token_that_cannot_read_get_user_asks_for_bot_login(core, gh, t):
    n = make_notifier(core, gh, t)
    run = restored(core)  # no record: a listing, and our identity to read it
    gh.fail_next(403, 1, body={"message": "Resource not accessible by integration"}, path_contains="/user")
    with pytest.raises(ConfigError, match="BOT_LOGIN"):
        n.handle(run.queued())


def test_a_create_whose_answer_was_lost_leaves_one_comment_in_the_end(core, gh, t):
    n, run = make_notifier(core, gh, t), Run(core)
    gh.fail_next(502, 1, method="POST", path_contains="/comments", applied=True)
    run.queued()
    assert n.handle(run.started()) == "created"  # the retry created a second one
    assert len(status_comments(gh)) == 2
    assert n.handle(run.processed()).startswith("edited")
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"]


def test_markers_only_count_at_the_start_of_our_comments(core, gh, t):
    n, run = make_notifier(core, gh, t, explain_untrusted=True), Run(core)
    run.queued(), run.started()
    n.handle(run.processed(log_tail=f"echo '{UNTRUSTED_MARKER}'"))
    second = Run(core, delivery="d-2")
    skipped = second.record("IssueSkipped", reason="untrusted_sender", sender="eve", permission="read")
    assert n.handle(skipped) == "told_untrusted"


@pytest.mark.server
def test_lambda_mode_over_a_moto_server_reads_the_token_from_secrets_manager(moto_server, github_server, monkeypatch):
    """The deployed path: token from GITHUB_TOKEN_SECRET_ID (GITHUB_TOKEN is ignored in Lambda),
    tables and secret behind AWS_ENDPOINT_URL."""
    from tests.conftest import make_core

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    remote = make_core(endpoint_url=moto_server, prefix="srv")
    boto3.client("secretsmanager").create_secret(Name="srv/github-token", SecretString="test-token")
    github_server.add_issue(REPO, NUMBER, labels=[LABEL])
    run = Run(remote)
    run.queued()
    queued = run.started()
    for key, value in {"GIP_PREFIX": "srv", "GITHUB_API_URL": github_server.url,
                       "AWS_LAMBDA_FUNCTION_NAME": "srv-notifier", "GITHUB_TOKEN": "wrong",
                       "BOT_LOGIN": "gip-bot"}.items():
        monkeypatch.setenv(key, value)
    new_container(monkeypatch, notifier)
    assert notifier.handler(sqs_batch([queued]), None) == {"batchItemFailures": []}
    assert len(status_comments(github_server)) == 1


# ---------------------------------------------------------------- GitHub calls, counted


def calls(gh) -> list[str]:
    """The requests about our issue, as ``METHOD route`` (ids folded)."""
    import re

    return [f"{r.method} " + re.sub(r"/\d+", "/{n}", r.path.split(REPO, 1)[-1])
            for r in gh.requests if REPO in r.path and r.path != f"/repos/{REPO}/labels"]


def test_a_full_run_costs_the_eyes_one_create_the_edits_and_one_label_and_no_read(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), Run(core)
    for step in (run.queued, run.started, run.processed):
        assert handle(n, [step()]) == {"batchItemFailures": []}
    assert calls(gh) == [
        "POST /issues/{n}/reactions",  # queued
        "POST /issues/{n}/comments",  # running
        "PATCH /issues/comments/{n}", "POST /issues/{n}/labels"]  # the verdict
    assert gh.reactions(REPO, NUMBER) == ["eyes"]
    # besides: the repository's labels once per container; no GET /user (no listing)
    assert [r.path for r in gh.requests if REPO not in r.path] == []
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"] and gh.labels(REPO, NUMBER)[-1] == "reproduced"


def test_a_batch_holding_the_whole_run_renders_it_once(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), Run(core)
    batch = [run.queued(), run.started(), run.processed()]
    seen: list[str] = []
    n_handle = n.handle
    n.handle = lambda e: seen.append(n_handle(e)) or seen[-1]  # type: ignore[method-assign]
    assert handle(n, batch) == {"batchItemFailures": []}
    assert seen == ["created,labels+1-0", "rendered_in_batch", "rendered_in_batch"]
    assert calls(gh) == ["POST /issues/{n}/reactions", "POST /issues/{n}/comments", "POST /issues/{n}/labels"]
    assert "Reproduced" in status_comments(gh)[0]["body"]


def test_redelivering_the_final_event_costs_nothing_on_a_warm_container(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), Run(core)
    for step in (run.queued, run.started):
        handle(n, [step()])
    final = run.processed()
    handle(n, [final])
    gh.reset_requests()
    assert handle(n, [final]) == {"batchItemFailures": []}
    assert n.handle(final) == "unchanged,labels+0-0"  # outside a batch too
    assert handle(n, [run.events[1]]) == {"batchItemFailures": []}  # an older one: no roll back
    assert gh.requests == []
    assert "Reproduced" in status_comments(gh)[0]["body"]


def test_a_deleted_comment_is_recreated_once_without_a_listing(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), Run(core)
    run.queued()
    n.handle(run.started())
    [comment] = status_comments(gh)
    n.github.delete_comment(REPO, comment["id"])  # by hand
    gh.reset_requests()
    final = run.processed()
    assert n.handle(final) == "created,labels+1-0"
    assert calls(gh) == ["PATCH /issues/comments/{n}", "POST /issues/{n}/comments",  # edit, 404, create
                         "POST /issues/{n}/labels"]
    [again] = status_comments(gh)
    assert "Reproduced" in again["body"] and again["id"] != comment["id"]
    gh.reset_requests()
    assert n.handle(final) == "unchanged,labels+0-0"  # remembered again: no listing
    assert calls(gh) == []
    assert len(status_comments(gh)) == 1


def test_a_failed_record_in_a_batch_leaves_the_next_one_to_render(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot", attempts=1), Run(core)
    batch = [run.queued(), run.started(), run.processed()]
    gh.fail_next(500, 1, method="POST", path_contains="/reactions")
    assert handle(n, batch) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    [comment] = status_comments(gh)
    assert "Reproduced" in comment["body"] and "reproduced" in gh.labels(REPO, NUMBER)
    gh.reset_requests()
    assert handle(n, batch[:1]) == {"batchItemFailures": []}  # SQS brings m0 back: nothing to do
    assert gh.requests == []


def test_a_failed_label_is_not_remembered(core, gh, t):
    n, run = make_notifier(core, gh, t, bot_login="gip-bot", attempts=1), Run(core)
    n.handle(run.queued()), n.handle(run.started())
    final = run.processed()
    gh.fail_next(500, 1, method="POST", path_contains="/labels")
    assert handle(n, [final]) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert "reproduced" not in gh.labels(REPO, NUMBER)
    assert handle(n, [final]) == {"batchItemFailures": []}
    assert gh.labels(REPO, NUMBER)[-1] == "reproduced"


# ---------------------------------------------------------------- issue 19 §4: the GitHub we meet


def test_a_wrong_bot_login_never_creates_a_second_status_comment(core, gh, t):
    run = Run(core)
    run.queued()
    make_notifier(core, gh, t, bot_login="gip-bot").handle(run.started())
    wrong = make_notifier(core, gh, t, bot_login="someone-else")  # a new container, a typo
    assert wrong.handle(run.processed()).startswith("edited")  # found by our record
    assert len(status_comments(gh)) == 1 and "Reproduced" in status_comments(gh)[0]["body"]


def test_an_app_finds_its_comments_by_app_id_when_get_user_is_refused(core, github_server, t):
    from tests.fakes.github_server import FakeGitHub

    with FakeGitHub(login="gip-app[bot]", app_id=4242).start() as app_gh:
        app_gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
        app_gh.installation_token = True
        old = app_gh.add_comment(REPO, NUMBER, f"{STATUS_MARKER}\nold verdict", login="gip-app[bot]")
        run = restored(core)  # no record: the listing must know our comment by the app id
        run.queued()
        n = make_notifier(core, app_gh, t, github_app_id="4242", bot_login="GIP-APP")
        assert n.handle(run.started()) == "edited"
        assert [c["id"] for c in status_comments(app_gh)] == [old["id"]]
        # no id, no app id, no BOT_LOGIN: our record still finds the comment by its id
        blind = make_notifier(core, app_gh, t)
        assert blind.handle(run.events[-1]) == "unchanged"


def test_a_comment_by_someone_else_is_never_edited_even_with_our_marker(core, gh, t):
    run = Run(core)
    gh.add_comment(REPO, NUMBER, f"{STATUS_MARKER}\nfake status", login="mallory")
    n = make_notifier(core, gh, t, bot_login="gip-bot")
    run.queued()
    assert n.handle(run.started()) == "created"
    assert [r for r in gh.requests if r.method == "PATCH"] == []


def test_verdict_labels_compare_without_case_and_are_created_up_front_once(core, gh, t):
    gh.add_repo_label(REPO, "Reproduced", color="000000")
    gh.set_labels(REPO, NUMBER, ["bug", LABEL, "Reproduced"])
    run = Run(core, labels=[LABEL, "Reproduced"])
    n = make_notifier(core, gh, t, bot_login="gip-bot")
    for step in (run.queued, run.started):
        n.handle(step())
    n.handle(run.processed(verdict="not_reproduced"))
    assert gh.labels(REPO, NUMBER) == ["bug", LABEL, "not-reproduced"]  # Reproduced removed
    labels = gh.repo_labels(REPO)
    assert labels["not-reproduced"]["color"] == "0e8a16" and labels["not-reproduced"]["description"]
    assert labels["Reproduced"]["color"] == "000000"  # an existing one is left as it is
    assert "reproduced" not in labels  # and not created twice under another case
    second = Run(core, delivery="d-2")
    for step in (second.queued, second.started):
        n.handle(step())
    gh.reset_requests()
    n.handle(second.processed(verdict="broken_repro"))
    assert [r for r in gh.requests if r.path == f"/repos/{REPO}/labels"] == []  # cached per repo


def test_a_transferred_issue_is_gone_for_the_notifier(core, gh, t):
    run = Run(core)
    n = make_notifier(core, gh, t, bot_login="gip-bot")
    run.queued()
    n.handle(run.started())
    gh.transfer_issue(REPO, NUMBER, "octo-org/elsewhere", 1)
    assert n.handle(run.processed()) == "issue_gone"  # the edit's 301 is not followed
    [moved] = gh.comments("octo-org/elsewhere", 1)
    assert "Reproduced" not in moved["body"]


def test_a_token_that_cannot_create_labels_still_sets_the_verdict_label(core, gh, t):
    run = Run(core)
    n = make_notifier(core, gh, t, bot_login="gip-bot")
    for step in (run.queued, run.started):
        n.handle(step())
    gh.fail_next(403, 1, body={"message": "Resource not accessible"}, path_contains="/labels", method="GET")
    assert n.handle(run.processed()).endswith("labels+1-0")
    assert gh.labels(REPO, NUMBER)[-1] == "reproduced"


def test_a_bad_config_comment_is_recorded_so_a_cold_container_finds_it_without_a_listing(core, gh, t, caplog):
    """A bad_config skip creates a comment with no 👀 before it: the record says run 0 (no
    reaction made), which the schema accepts, so the comment id is kept (once the append was
    refused and an ERROR logged)."""
    n, run = make_notifier(core, gh, t, bot_login="gip-bot"), Run(core)
    skipped = run.record("IssueSkipped", reason="bad_config", sender="mia",
                         detail=".github/reproduce.yml line 3: max_runs: 0 is less than the minimum of 1")
    assert n.handle(skipped) == "created"
    [comment] = status_comments(gh)
    assert "reproduce.yml line 3" in comment["body"] and gh.reactions(REPO, NUMBER) == []
    [record] = core.store.read(f"comment-{REPO}#{NUMBER}")
    assert record["data"] == {"comment_id": comment["id"], "run": 0}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    cold = make_notifier(core, gh, t, bot_login="gip-bot")
    gh.reset_requests()
    assert cold.handle(skipped) == "unchanged"
    assert calls(gh) == ["GET /issues/comments/{n}"]  # found by the record: no listing
