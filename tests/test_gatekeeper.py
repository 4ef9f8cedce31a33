"""Gatekeeper: pure decisions, then the shell on the in-memory store (moto in-process where the
handler builds its service from the environment) and the fake GitHub."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gip.adapters.github.client import GitHubClient, Permission
from gip.adapters.github.consumer import envelope_from_record
from gip.config import Settings
from gip.container import TtlCache
from gip.domain.envelope import Cause, utcnow
from gip.domain.qualify import Rules
from gip.services.gatekeeper import Gatekeeper, PermissionCache, decide
from handlers import gatekeeper
from tests import service_fixtures
from tests.conftest import new_container
from tests.fakes import fixtures
from tests.fakes.bus import sqs_batch
from tests.fakes.clock import FakeTime

github_server = fixtures.github_server
core, dynamo_core, t = service_fixtures.core, service_fixtures.dynamo_core, service_fixtures.t
EVENTS = Path(__file__).parent / "events"
REPO, NUMBER = "octo-org/hello-world", 42
LABEL = "needs-reproduction"


def make_gatekeeper(core, gh, t: FakeTime, *, token: str | None = "test-token", stale: bool = False,
                    **settings) -> Gatekeeper:
    """``stale``: the deliveries arrived more than PAYLOAD_FRESH_S ago, so the issue is re-read."""
    client = None
    if token:
        client = GitHubClient(base_url=gh.url, token=token, sleep=t.sleep, clock=t.clock,
                              rand=lambda: 1.0, write_interval_s=0, max_attempts=3)
    return Gatekeeper(issues=core.issues, github=client,
                      settings=Settings.for_prefix("test", **settings),
                      permissions=PermissionCache(clock=t.clock),
                      config_files=TtlCache(ttl_s=Settings().repo_config_ttl_s, clock=t.clock),
                      now=(lambda: utcnow() + timedelta(seconds=61)) if stale else utcnow)


def receive(core, *, sender="maintainer-mia", number=NUMBER, delivery="d-1", repo: str = REPO,
            **extra: Any) -> dict:
    data = {"repo": repo, "number": number, "title": "A bug", "labels": ["bug", LABEL],
            "trigger": "labeled", "sender": sender, "html_url": f"https://github.com/{repo}/issues/{number}",
            "author_association": "NONE", **extra}
    result = core.issues.receive(delivery_id=delivery, repo=repo, number=number, data=data,
                                 cause=Cause(correlation_id=delivery, actor="webhook"))
    assert result.appended
    return result.event


def stream_types(core, number=NUMBER) -> list[str]:
    return [e["type"] for e in core.store.read(f"issue-{REPO}#{number}")]


# ---------------------------------------------------------------- pure


def test_the_recorded_sqs_record_carries_an_issue_received_envelope():
    record = json.loads((EVENTS / "gh_sqs_issue_received.json").read_text())
    envelope = envelope_from_record(record)
    assert envelope["type"] == "IssueReceived"
    assert envelope["data"]["sender"] == "maintainer-mia"


def common(**kw):
    base = dict(run=1, sender="s", state="open", labels=[LABEL], required=[LABEL],
                trusted=["admin", "maintain", "write"], checked_via="collaborator_api",
                permission=Permission("write", "write"))
    base.update(kw)
    return base


@pytest.mark.parametrize(("permission", "queued"), [
    (Permission("admin", "admin"), True), (Permission("write", "maintain"), True),
    (Permission("write", "write"), True), (Permission("write", "deployer"), True),
    (Permission("read", "triage"), False), (Permission("read", "read"), False),
    (Permission("none", "none"), False),
])
def test_only_trusted_permissions_queue(permission, queued):
    decision = decide(**common(permission=permission))
    assert (decision.type == "IssueQueued") is queued
    if not queued:
        assert decision.data["reason"] == "untrusted_sender"


def test_trusted_permissions_are_configurable():
    assert decide(**common(trusted=["admin"])).data["reason"] == "untrusted_sender"


def test_closed_beats_label_removed_beats_untrusted():
    assert decide(**common(state="closed", labels=[])).data["reason"] == "closed"
    assert decide(**common(labels=["bug"])).data["reason"] == "label_removed"
    assert decide(**common(labels=["Needs-Reproduction"])).type == "IssueQueued"


def test_labels_compare_as_the_webhook_compares_them_casefolded():
    # "Straße".lower() is "straße", its casefold is "strasse": the webhook (qualify) received
    # this run, so the gatekeeper must not call its label removed.
    assert Rules(["Straße"]).is_required("STRASSE")
    assert decide(**common(labels=["STRASSE"], required=["Straße"])).type == "IssueQueued"


# ---------------------------------------------------------------- shell


def test_trusted_sender_is_queued_without_a_github_write(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    gh.set_permission(REPO, "maintainer-mia", "maintain")
    event = receive(core)
    result = gatekeeper_handle(make_gatekeeper(core, gh, t), [event])
    assert result == {"batchItemFailures": []}
    events = core.store.read(f"issue-{REPO}#{NUMBER}")
    assert [e["type"] for e in events] == ["IssueReceived", "IssueQueued"]
    assert events[1]["data"] == {"run": 1, "sender": "maintainer-mia", "permission": "maintain",
                                 "checked_via": "collaborator_api"}
    assert events[1]["causation_id"] == event["event_id"]
    assert events[1]["correlation_id"] == "d-1"
    assert gh.reactions(REPO, NUMBER) == []  # the 👀 is the notifier's first write
    # the permission and the matrix config (issue 17); the payload is fresh, so no GET issue
    assert [r.path.split(REPO, 1)[-1] for r in gh.requests] == [
        "/collaborators/maintainer-mia/permission", "/contents/.github/reproduce.yml"]
    assert {r.method for r in gh.requests} == {"GET"}
    assert core.issues.get(REPO, NUMBER).status == "QUEUED"


def gatekeeper_handle(gk: Gatekeeper, envelopes: list[dict]) -> dict:
    """The handler's loop with an injected gatekeeper (what its ``_service`` builds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gatekeeper, "_service", lambda: gk)
        return gatekeeper.handler(sqs_batch(envelopes), None)


def test_a_redelivered_issue_received_appends_nothing(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    event = receive(core)
    gk = make_gatekeeper(core, gh, t)
    assert gk.handle(event) == "IssueQueued"
    assert gk.handle(event) == "already_decided"
    assert stream_types(core) == ["IssueReceived", "IssueQueued"]
    assert gh.reactions(REPO, NUMBER) == []


def test_an_untrusted_sender_is_skipped_without_eyes(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])  # issue forms put the label on for anyone
    event = receive(core, sender="drive-by")
    assert make_gatekeeper(core, gh, t).handle(event) == "IssueSkipped"
    skipped = core.store.read(f"issue-{REPO}#{NUMBER}")[-1]
    assert skipped["data"] == {"reason": "untrusted_sender", "run": 1, "sender": "drive-by",
                               "permission": "read"}
    assert gh.reactions(REPO, NUMBER) == []


@pytest.mark.parametrize(("state", "labels", "reason"), [
    ("closed", [LABEL], "closed"), ("open", ["bug"], "label_removed"),
])
def test_a_stale_payload_is_re_read_github_says_closed_or_unlabelled_now(core, github_server, t, state, labels,
                                                                         reason):
    gh = github_server
    gh.add_issue(REPO, NUMBER, state=state, labels=labels)
    gh.set_permission(REPO, "maintainer-mia", "admin")
    make_gatekeeper(core, gh, t, stale=True).handle(receive(core))
    assert core.store.read(f"issue-{REPO}#{NUMBER}")[-1]["data"]["reason"] == reason


def test_a_fresh_payload_decides_by_its_own_labels_without_get_issue(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug"])  # GitHub would say unlabelled: not asked
    gh.set_permission(REPO, "maintainer-mia", "admin")
    assert make_gatekeeper(core, gh, t).handle(receive(core)) == "IssueQueued"
    assert [r.path.split(REPO, 1)[-1] for r in gh.requests] == [
        "/collaborators/maintainer-mia/permission", "/contents/.github/reproduce.yml"]
    unlabelled = receive(core, number=7, delivery="d-7", labels=["bug"])
    assert make_gatekeeper(core, gh, t).handle(unlabelled) == "IssueSkipped"
    assert core.store.read(f"issue-{REPO}#7")[-1]["data"]["reason"] == "label_removed"


def test_a_label_removed_while_the_run_waits_is_honoured_by_the_issue_stream(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "admin")
    event = receive(core)
    cause = Cause(correlation_id="d-2", actor="webhook")
    assert core.issues.cancel(REPO, NUMBER, reason="label_removed", cause=cause) is not None  # unlabeled
    assert make_gatekeeper(core, gh, t).handle(event) == "already_decided"
    assert stream_types(core) == ["IssueReceived", "IssueSkipped"]


def test_a_500_storm_fails_the_record_and_appends_nothing_then_the_retry_queues(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    event = receive(core)
    gk = make_gatekeeper(core, gh, t)
    gh.fail_next(500, 3)
    assert gatekeeper_handle(gk, [event]) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert stream_types(core) == ["IssueReceived"]
    assert gatekeeper_handle(gk, [event]) == {"batchItemFailures": []}  # SQS redelivers
    assert stream_types(core) == ["IssueReceived", "IssueQueued"]


def test_403_with_retry_after_then_success(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    gh.fail_next(403, 1, {"Retry-After": "4"}, path_contains="/permission")
    assert make_gatekeeper(core, gh, t).handle(receive(core)) == "IssueQueued"
    assert t.sleeps == [4.0]


def test_one_bad_record_fails_alone(core, github_server, t):
    gh = github_server
    for n in (1, 2):
        gh.add_issue(REPO, n, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    first, second = receive(core, number=1, delivery="d-a"), receive(core, number=2, delivery="d-b")
    gh.fail_next(500, 5, path_contains="/issues/1")
    result = gatekeeper_handle(make_gatekeeper(core, gh, t, stale=True), [first, second])
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert stream_types(core, 1) == ["IssueReceived"]
    assert stream_types(core, 2) == ["IssueReceived", "IssueQueued"]


def test_permission_is_cached_per_container_with_a_ttl(core, github_server, t):
    gh = github_server
    for n in (1, 2, 3):
        gh.add_issue(REPO, n, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    gk = make_gatekeeper(core, gh, t)
    gk.handle(receive(core, number=1, delivery="d-1"))
    gk.handle(receive(core, number=2, delivery="d-2"))
    t.now += 301
    gk.handle(receive(core, number=3, delivery="d-3"))
    asked = [r for r in gh.requests if r.path.endswith("/permission")]
    assert len(asked) == 2


def test_a_command_re_reads_the_issue_and_writes_nothing(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug"])  # the label went after the comment's payload
    comment = gh.add_comment(REPO, NUMBER, "/reproduce", login="maintainer-mia")
    gh.set_permission(REPO, "maintainer-mia", "write")
    event = receive(core, trigger="command", command="/reproduce", comment_id=comment["id"])
    assert make_gatekeeper(core, gh, t).handle(event) == "IssueSkipped"
    assert ("GET", f"/repos/{REPO}/issues/{NUMBER}") in [(r.method, r.path) for r in gh.requests]
    assert {r.method for r in gh.requests} == {"GET"}
    assert gh.comment_reactions(REPO, comment["id"]) == [] and gh.reactions(REPO, NUMBER) == []


@pytest.mark.parametrize(("association", "expected"), [
    ("MEMBER", "IssueQueued"), ("OWNER", "IssueQueued"), ("COLLABORATOR", "IssueQueued"),
    ("CONTRIBUTOR", "IssueSkipped"), ("NONE", "IssueSkipped"),
])
def test_local_mode_without_token_trusts_author_association_and_says_so(
        core, github_server, t, caplog, association, expected):
    event = receive(core, author_association=association)
    with caplog.at_level(logging.WARNING, logger="gip.services.gatekeeper"):
        assert make_gatekeeper(core, github_server, t, token=None).handle(event) == expected
    assert "author_association" in caplog.text
    assert github_server.requests == []
    last = core.store.read(f"issue-{REPO}#{NUMBER}")[-1]
    if expected == "IssueQueued":
        assert last["data"]["checked_via"] == "author_association"


def test_handler_builds_from_the_environment(dynamo_core, github_server, monkeypatch):
    core = dynamo_core  # the handler builds its store from the environment: the tables
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    event = receive(core)
    monkeypatch.setenv("GIP_PREFIX", "test")
    monkeypatch.setenv("GITHUB_API_URL", gh.url + "/api/v3")
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    new_container(monkeypatch, gatekeeper)
    assert gatekeeper.handler(sqs_batch([event]), None) == {"batchItemFailures": []}
    assert stream_types(core) == ["IssueReceived", "IssueQueued"]
    assert all(r.headers["authorization"] == "Bearer test-token" for r in gh.requests)


def test_github_calls_per_run_only_reads_that_decide_and_a_redelivery_costs_nothing(core, github_server, t):
    gh = github_server
    for n in (1, 2, 3):
        gh.add_issue(REPO, n, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    gk = make_gatekeeper(core, gh, t)
    first = receive(core, number=1, delivery="d-1")
    assert gk.handle(first) == "IssueQueued"
    assert [(r.method, r.path.split(REPO, 1)[-1]) for r in gh.requests] == [
        ("GET", "/collaborators/maintainer-mia/permission"),
        ("GET", "/contents/.github/reproduce.yml")]  # issue 17: the repository's matrix config
    gh.reset_requests()
    assert gk.handle(receive(core, number=2, delivery="d-2")) == "IssueQueued"  # both cached
    assert gh.requests == []
    gh.reset_requests()
    assert gh.requests == []
    assert gatekeeper_handle(gk, [first]) == {"batchItemFailures": []}  # redelivered
    assert make_gatekeeper(core, gh, t).handle(first) == "already_decided"  # cold container
    assert gh.requests == []
    assert make_gatekeeper(core, gh, t, stale=True).handle(receive(core, number=3, delivery="d-3")) == "IssueQueued"
    assert [(r.method, r.path.split(REPO, 1)[-1]) for r in gh.requests] == [
        ("GET", "/issues/3"), ("GET", "/collaborators/maintainer-mia/permission"),
        ("GET", "/contents/.github/reproduce.yml")]


def test_reproduce_yml_is_read_once_per_repository_per_ttl_and_an_edit_applies_after_it(core, github_server, t):
    gh = github_server
    for n in (1, 2, 3, 4):
        gh.add_issue(REPO, n, labels=[LABEL])
    gh.add_issue("octo-org/other", 1, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    gh.set_permission("octo-org/other", "maintainer-mia", "write")
    gk = make_gatekeeper(core, gh, t)

    def contents() -> list[str]:
        return [r.path.split("/repos/", 1)[-1] for r in gh.requests if "/contents/" in r.path]

    assert gk.handle(receive(core, number=1, delivery="d-1")) == "IssueQueued"
    assert gk.handle(receive(core, number=2, delivery="d-2")) == "IssueQueued"
    assert gk.handle(receive(core, number=1, delivery="d-o", repo="octo-org/other")) == "IssueQueued"
    assert contents() == [f"{REPO}/contents/.github/reproduce.yml",  # "no file" is kept too
                          "octo-org/other/contents/.github/reproduce.yml"]  # per repository

    # an edit within the TTL is not seen yet; after it, the next issue reads the file again
    gh.set_file(REPO, ".github/reproduce.yml", "versions:\n  source: list\nmax_runs: 0\n")
    t.now += 59
    assert gk.handle(receive(core, number=3, delivery="d-3")) == "IssueQueued"
    t.now += 2
    assert gk.handle(receive(core, number=4, delivery="d-4")) == "IssueSkipped"  # bad_config, read afresh
    assert core.store.read(f"issue-{REPO}#4")[-1]["data"]["reason"] == "bad_config"
    assert len(contents()) == 3


def test_a_failed_reproduce_yml_read_is_not_kept(core, github_server, t):
    gh = github_server
    for n in (1, 2):
        gh.add_issue(REPO, n, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    gk = make_gatekeeper(core, gh, t)
    gh.fail_next(502, 3, path_contains="/contents/.github/reproduce.yml")  # the client's 3 attempts
    event = receive(core, number=1, delivery="d-1")
    assert gatekeeper_handle(gk, [event]) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert gk.handle(event) == "IssueQueued"  # SQS's retry reads the file again
    assert len([r for r in gh.requests if "/contents/" in r.path]) == 4


# ---------------------------------------------------------------- issue 19: 401/403, no noise


def test_a_rotated_token_is_fetched_again_and_the_run_goes_on(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    tokens = ["stale-token", "test-token"]
    invalidated = []

    class Source:
        def token_for(self, repo):
            return tokens[0]

        def invalidate(self, repo):
            invalidated.append(repo)
            tokens.pop(0)

        def rate_key(self, repo):
            return "token"

    g = make_gatekeeper(core, gh, t)
    g.github = GitHubClient(base_url=gh.url, token=Source(), sleep=t.sleep, clock=t.clock)
    assert g.handle(receive(core)) == "IssueQueued"
    assert invalidated == [REPO]


@pytest.mark.parametrize(("arrange", "reason"), [
    (lambda gh: gh.expire_token(), "github_unauthorized"),
    (lambda gh: gh.uncover(REPO), "github_forbidden"),
])
def test_a_terminal_401_or_403_skips_the_run_so_the_issue_can_be_triggered_again(
        core, github_server, t, arrange, reason):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    arrange(gh)
    g = make_gatekeeper(core, gh, t)
    assert g.handle(receive(core)) == "IssueSkipped"
    issue = core.issues.get(REPO, NUMBER)
    assert (issue.status, issue.reason) == ("SKIPPED", reason)
    assert not issue.active  # a new label or /reproduce starts run 2
    assert receive(core, delivery="d-2")["data"]["run"] == 2


def test_a_stranger_is_untrusted_and_a_rate_limit_is_not_a_skip(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    gh.stranger("ghost")
    g = make_gatekeeper(core, gh, t)
    assert g.handle(receive(core, sender="ghost")) == "IssueSkipped"
    assert core.issues.get(REPO, NUMBER).reason == "untrusted_sender"
    from gip.adapters.github import errors

    gh.fail_next(403, 1, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"})
    with pytest.raises(errors.RateLimited):
        g.handle(receive(core, number=43, delivery="d-43"))
    assert core.issues.get(REPO, 43).status == "RECEIVED"  # nothing appended: it comes back


def test_an_untrusted_command_is_skipped_and_the_gatekeeper_writes_nothing(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    comment = gh.add_comment(REPO, NUMBER, "/reproduce", login="eve")
    g = make_gatekeeper(core, gh, t)
    event = receive(core, sender="eve", trigger="command", comment_id=comment["id"])
    assert g.handle(event) == "IssueSkipped"
    assert gh.comment_reactions(REPO, comment["id"]) == []  # the notifier's 😕 (test_notifier)
    assert gh.reactions(REPO, NUMBER) == [] and len(gh.comments(REPO, NUMBER)) == 1
    assert make_gatekeeper(core, gh, t).handle(event) == "already_decided"
    assert {r.method for r in gh.requests} == {"GET"}


def test_an_untrusted_label_sender_is_skipped_silently(core, github_server, t):
    gh = github_server
    gh.add_issue(REPO, NUMBER, labels=["bug", LABEL])
    g = make_gatekeeper(core, gh, t)
    assert g.handle(receive(core, sender="reporter-rae")) == "IssueSkipped"
    assert [r for r in gh.requests if r.is_write] == []


def test_a_secondary_limit_stops_a_batch_of_ten_after_one_request(core, github_server, t):
    gh = github_server
    for n in range(1, 11):
        gh.add_issue(REPO, n, labels=[LABEL])
    envelopes = [receive(core, number=n, delivery=f"d-{n}") for n in range(1, 11)]
    gh.fail_next(403, 1, {"Retry-After": "120"}, body={"message": "You have exceeded a secondary rate limit"})
    handed_back = []
    gk = make_gatekeeper(core, gh, t)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gip.adapters.github.consumer.hand_back",
                   lambda records, **kw: handed_back.extend((r["messageId"], kw["wait_s"]) for r in records) or set())
        result = gatekeeper_handle(gk, envelopes)
    assert len(gh.requests) == 1  # was: 10 more requests after the limit
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [f"m{i}" for i in range(10)]
    assert handed_back == [(f"m{i}", 120.0) for i in range(10)]
    assert all(stream_types(core, n) == ["IssueReceived"] for n in range(1, 11))
