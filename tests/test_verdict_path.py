"""Issue 18: GitHub writes off the critical path. The gatekeeper queues without writing, the
notifier's first write for a run is the 👀, our status comment is found from our own record
(StatusCommentPosted on the comment- stream), and it all stays correct: on the in-memory store
(the services see only the store's protocols) and the fake GitHub (OpenAPI-checked), nothing
patched."""

from __future__ import annotations

from typing import Any

from gip.adapters.github.client import GitHubClient
from gip.config import Settings
from gip.domain.comment import STATUS_MARKER
from gip.domain.envelope import Cause
from gip.domain.issue import Issue
from gip.services.gatekeeper import Gatekeeper, PermissionCache, must_reread
from gip.services.notifier import Notifier
from gip.services.projection import Projections
from gip.services.status_record import NONE, StatusRecords, reaction
from tests import service_fixtures
from tests.fakes import fixtures
from tests.fakes.clock import FakeTime

github_server = fixtures.github_server
core, t = service_fixtures.core, service_fixtures.t
REPO, NUMBER = "octo-org/hello-world", 42
LABEL = "needs-reproduction"
STREAM = f"issue-{REPO}#{NUMBER}"


def client(gh, t: FakeTime) -> GitHubClient:
    return GitHubClient(base_url=gh.url, token="test-token", sleep=t.sleep, clock=t.clock,
                        rand=lambda: 1.0, write_interval_s=0, max_attempts=3)


def notifier(core, gh, t, **kw: Any) -> Notifier:
    return Notifier(issues=core.issues, github=client(gh, t),
                    settings=Settings.for_prefix("test", bot_login="gip-bot", **kw))


def gatekeeper(core, gh, t) -> Gatekeeper:
    return Gatekeeper(issues=core.issues, github=client(gh, t), settings=Settings.for_prefix("test"),
                      permissions=PermissionCache(clock=t.clock))


def receive(core, *, delivery: str = "d-1", sender: str = "mia", **extra: Any) -> dict:
    data = {"repo": REPO, "number": NUMBER, "title": "A bug", "labels": ["bug", LABEL],
            "trigger": "labeled", "sender": sender, "html_url": f"https://github.com/{REPO}/issues/{NUMBER}",
            **extra}
    result = core.issues.receive(delivery_id=delivery, repo=REPO, number=NUMBER, data=data,
                                 cause=Cause(correlation_id=delivery, actor="webhook"))
    assert result.appended
    return result.event


def record(core, type_: str, **data: Any) -> dict:
    run = core.issues.get(REPO, NUMBER).run
    return core.issues.record(REPO, NUMBER, type_, {"run": run, **data},
                              cause=Cause(correlation_id="c", actor="test"))


def status_comments(gh) -> list[dict]:
    return [c for c in gh.comments(REPO, NUMBER) if STATUS_MARKER in c["body"]]


# ---------------------------------------------------------------- pure


def test_only_a_stale_payload_or_a_command_is_re_read():
    assert not must_reread(trigger="labeled", age_s=59.0)
    assert must_reread(trigger="labeled", age_s=61.0)
    assert must_reread(trigger="command", age_s=0.0)


def test_the_reaction_owed_is_eyes_once_per_run_and_confused_only_for_a_command():
    queued = Issue(stream=STREAM, repo=REPO, number=NUMBER, status="QUEUED", version=2, run=2, trigger="labeled")
    assert reaction(queued, True, 1, list) == ("eyes", None)
    assert reaction(queued, True, 2, list) is None  # the record shows it made
    untrusted = Issue(stream=STREAM, repo=REPO, number=NUMBER, status="SKIPPED", version=2, run=1,
                      reason="untrusted_sender", trigger="labeled")
    assert reaction(untrusted, False, 0, list) is None  # never on a label
    command = Issue(stream=STREAM, repo=REPO, number=NUMBER, status="SKIPPED", version=2, run=1,
                    reason="untrusted_sender", trigger="command")
    received = [{"type": "IssueReceived", "data": {"run": 1, "comment_id": 77}}]
    assert reaction(command, False, 0, lambda: received) == ("confused", 77)


# ---------------------------------------------------------------- shell


def test_the_gatekeeper_queues_a_burst_without_a_write_and_the_notifier_adds_the_eyes(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    gh.set_permission(REPO, "mia", "write")
    event = receive(core)
    assert gatekeeper(core, gh, t).handle(event) == "IssueQueued"
    assert not [r for r in gh.requests if r.is_write] and gh.reactions(REPO, NUMBER) == []
    queued = core.store.read(STREAM)[-1]
    n = notifier(core, gh, t)
    assert n.handle(queued) == "no_status_comment"  # the 👀 shows a queued run
    assert gh.reactions(REPO, NUMBER) == ["eyes"] and status_comments(gh) == []
    assert n.handle(queued) == "no_status_comment"
    assert gh.reactions(REPO, NUMBER) == ["eyes"] and len(gh.writes()) == 1  # once per run
    assert n.handle(record(core, "IssueProcessingStarted", account_id="111122223333", lease_id="l",
                           worker="w")) == "created"
    posted = core.store.read(f"comment-{REPO}#{NUMBER}")
    assert [e["type"] for e in posted] == ["StatusCommentPosted"] * 2
    assert [e["data"] for e in posted] == [{"comment_id": None, "run": 1},
                                           {"comment_id": status_comments(gh)[0]["id"], "run": 1}]


def test_a_command_gets_eyes_on_its_comment_and_an_untrusted_one_gets_confused_once(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    mia = gh.add_comment(REPO, NUMBER, "/reproduce", login="mia")
    receive(core, trigger="command", command="/reproduce", comment_id=mia["id"])
    n = notifier(core, gh, t)
    n.handle(record(core, "IssueQueued", sender="mia", permission="write"))
    assert gh.comment_reactions(REPO, mia["id"]) == ["eyes"] and gh.reactions(REPO, NUMBER) == []
    n.handle(record(core, "IssueProcessingStarted", account_id="111122223333", lease_id="l", worker="w"))
    record(core, "IssueProcessingFailed", error="boom", retryable=False, attempt=1)
    eve = gh.add_comment(REPO, NUMBER, "/reproduce", login="eve")
    receive(core, delivery="d-2", sender="eve", trigger="command", comment_id=eve["id"])
    skipped = record(core, "IssueSkipped", reason="untrusted_sender", sender="eve", permission="read")
    gh.reset_requests()
    assert n.handle(skipped) == "nothing"
    assert n.handle(skipped) == "nothing"  # redelivered: 😕 once per container
    assert gh.comment_reactions(REPO, eve["id"]) == ["confused"]
    assert [r.method for r in gh.requests] == ["POST"]
    assert len(status_comments(gh)) == 1  # no comment for the untrusted one


def test_redelivery_and_fan_out_give_one_comment(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    gh.set_permission(REPO, "mia", "write")
    event = receive(core)
    assert receive_again(core) is False  # the webhook's redelivery appends nothing
    for _ in range(2):  # the same IssueReceived twice (SQS at least once), two containers
        gatekeeper(core, gh, t).handle(event)
    queued = core.store.read(STREAM)[-1]
    first, second = notifier(core, gh, t), notifier(core, gh, t)
    first.handle(queued)
    second.handle(queued)  # another container: the record finds the comment by id
    record(core, "IssueProcessingStarted", account_id="111122223333", lease_id="l", worker="w")
    done = record(core, "IssueProcessed", verdict="reproduced", exit_code=1, duration_s=1.0,
                  result_uri="s3://r/x.json")
    second.handle(done)
    first.handle(done)
    assert len(status_comments(gh)) == 1 and "Reproduced" in status_comments(gh)[0]["body"]
    assert gh.reactions(REPO, NUMBER) == ["eyes"]
    assert not [r for r in gh.requests if r.method == "GET" and r.path.endswith("/comments")]
    assert [e["type"] for e in core.store.read(STREAM)].count("IssueQueued") == 1


def receive_again(core) -> bool:
    data = {"repo": REPO, "number": NUMBER, "title": "A bug", "labels": [LABEL], "trigger": "labeled",
            "sender": "mia", "html_url": "x"}
    return core.issues.receive(delivery_id="d-1", repo=REPO, number=NUMBER, data=data,
                               cause=Cause(correlation_id="d-1", actor="webhook")).appended


def test_a_hand_deleted_comment_is_re_created_on_the_next_update(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    receive(core)
    n = notifier(core, gh, t)
    record(core, "IssueQueued", sender="mia", permission="write")
    n.handle(record(core, "IssueProcessingStarted", account_id="111122223333", lease_id="l", worker="w"))
    [gone] = status_comments(gh)
    client(gh, t).delete_comment(REPO, gone["id"])
    done = record(core, "IssueProcessed", verdict="reproduced", exit_code=1, duration_s=1.0, result_uri="s3://r/x")
    cold = notifier(core, gh, t)  # a new container: the record, then a 404, then a create
    gh.reset_requests()
    assert cold.handle(done) == "created,labels+1-0"
    [again] = status_comments(gh)
    assert again["id"] != gone["id"] and "Reproduced" in again["body"]
    assert not [r for r in gh.requests if r.path.endswith(f"/issues/{NUMBER}/comments") and r.method == "GET"]
    assert StatusRecords(core.store).get(STREAM).comment_id == again["id"]  # recorded again


def test_without_a_record_on_a_later_run_the_listing_finds_the_comment(core, github_server, t):
    gh = github_server  # as after a restore: our comment is on GitHub, the record is not
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    old = gh.add_comment(REPO, NUMBER, f"{STATUS_MARKER}\nold verdict", login="gip-bot")
    receive(core)
    record(core, "IssueSkipped", reason="closed")
    receive(core, delivery="d-2")
    assert StatusRecords(core.store).get(STREAM) is None
    n = notifier(core, gh, t)
    assert n.handle(record(core, "IssueQueued", sender="mia", permission="write")) == "edited"
    assert [c["id"] for c in status_comments(gh)] == [old["id"]]
    assert StatusRecords(core.store).get(STREAM).comment_id == old["id"]


def test_replay_verify_has_no_drift_with_status_records(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    receive(core)
    notifier(core, gh, t).handle(record(core, "IssueQueued", sender="mia", permission="write"))
    assert StatusRecords(core.store).get(STREAM) != NONE
    assert Projections(core.store).verify() == []
