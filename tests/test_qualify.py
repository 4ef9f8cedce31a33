"""Pure qualification rules over recorded GitHub payloads (no AWS)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gip.domain.delivery import BadRequest, Delivery
from gip.domain.qualify import (
    MAX_BODY_JSON_BYTES,
    Cancel,
    Ignore,
    Pong,
    Receive,
    Rules,
    cap_json_size,
    first_line_command,
    qualify,
)

EVENTS = Path(__file__).parent / "events"
RULES = Rules(required_labels=("needs-reproduction",), bot_login="repro-bot[bot]")
NEEDS = {"id": 7, "name": "needs-reproduction", "color": "fbca04", "default": False}
BUG = {"id": 1, "name": "bug", "color": "d73a4a", "default": True}


def payload_of(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text())["payload"])


def delivery(event: str, payload: dict[str, Any]) -> Delivery:
    return Delivery(event=event, delivery_id="d-1", payload=payload)


def labeled(label: dict[str, Any] = NEEDS, labels: list[dict[str, Any]] | None = None) -> Delivery:
    payload = payload_of("wh_issues_labeled.json")
    payload["label"] = label
    if labels is not None:
        payload["issue"]["labels"] = labels
    return delivery("issues", payload)


def test_ping_is_pong() -> None:
    assert qualify(delivery("ping", payload_of("wh_ping.json")), RULES) == Pong()


def test_required_label_applied_qualifies_with_full_data() -> None:
    decision = qualify(delivery("issues", payload_of("wh_issues_labeled.json")), RULES)
    assert isinstance(decision, Receive)
    assert (decision.repo, decision.number) == ("octo-org/hello-world", 42)
    data = decision.data
    assert data["trigger"] == "labeled"
    assert data["sender"] == "monalisa"
    assert data["labels"] == ["bug", "needs-reproduction"]
    assert data["title"] == "put_object with SHA256 checksum fails under object lock"
    assert data["html_url"] == "https://github.com/octo-org/hello-world/issues/42"
    assert data["author_association"] == "CONTRIBUTOR"
    assert "### Reproduction" in data["body"]
    assert data["label"] == "needs-reproduction"
    assert "command" not in data and "run" not in data


def test_label_match_is_case_insensitive() -> None:
    label = NEEDS | {"name": "Needs-Reproduction"}
    assert isinstance(qualify(labeled(label, [label]), RULES), Receive)


def test_other_label_applied_is_ignored_even_if_issue_has_required_label() -> None:
    decision = qualify(labeled(BUG, [BUG, NEEDS]), RULES)
    assert decision == Ignore("label 'bug' is not a required label")


def test_labeled_on_closed_issue_is_ignored() -> None:
    d = labeled()
    d.payload["issue"]["state"] = "closed"
    assert qualify(d, RULES) == Ignore("issue is closed")


def test_opened_with_required_label_qualifies() -> None:
    decision = qualify(delivery("issues", payload_of("wh_issues_opened.json")), RULES)
    assert isinstance(decision, Receive)
    assert decision.data["trigger"] == "opened"
    assert decision.data["sender"] == "octocat"


def test_reopened_with_required_label_qualifies() -> None:
    payload = payload_of("wh_issues_opened.json") | {"action": "reopened"}
    decision = qualify(delivery("issues", payload), RULES)
    assert isinstance(decision, Receive) and decision.data["trigger"] == "reopened"


def test_opened_without_required_label_is_ignored() -> None:
    payload = payload_of("wh_issues_opened.json")
    payload["issue"]["labels"] = [BUG]
    assert qualify(delivery("issues", payload), RULES) == Ignore("issue carries no required label")


def test_reproduce_comment_qualifies_as_command() -> None:
    decision = qualify(delivery("issue_comment", payload_of("wh_issue_comment_created.json")), RULES)
    assert isinstance(decision, Receive)
    assert decision.data["trigger"] == "command"
    assert decision.data["command"] == "/reproduce"
    assert decision.data["comment_id"] == 2124455001
    assert decision.data["sender"] == "monalisa"
    # the commenter's association (MEMBER), not the issue author's (CONTRIBUTOR)
    assert decision.data["author_association"] == "MEMBER"


@pytest.mark.parametrize(
    ("body", "command"),
    [("/retry", "/retry"), ("\n  /reproduce  \nplease", "/reproduce"), ("/reproduce\r\nmore", "/reproduce"),
     ("please /reproduce", None), ("/reproduce-now", None), ("> /reproduce", None), ("", None), ("/RETRY", None)],
)
def test_first_line_command(body: str, command: str | None) -> None:
    assert first_line_command(body) == command


def test_ordinary_comment_is_ignored() -> None:
    payload = payload_of("wh_issue_comment_created.json")
    payload["comment"]["body"] = "Thanks, I can see it too.\n/reproduce"
    assert qualify(delivery("issue_comment", payload), RULES) == Ignore("comment is not a command")


def test_command_on_pull_request_is_ignored() -> None:
    payload = payload_of("wh_issue_comment_created.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/42"}
    assert qualify(delivery("issue_comment", payload), RULES) == Ignore("comment is on a pull request")


def test_command_on_issue_without_required_label_is_ignored() -> None:
    payload = payload_of("wh_issue_comment_created.json")
    payload["issue"]["labels"] = [BUG]
    assert qualify(delivery("issue_comment", payload), RULES) == Ignore("issue carries no required label")


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_or_deleted_comment_is_ignored(action: str) -> None:
    payload = payload_of("wh_issue_comment_created.json") | {"action": action}
    decision = qualify(delivery("issue_comment", payload), RULES)
    assert decision == Ignore(f"issue_comment.{action} is not handled")


def test_bot_sender_is_ignored() -> None:
    d = labeled()
    d.payload["sender"] = {"login": "dependabot[bot]", "id": 49699333, "type": "Bot"}
    assert qualify(d, RULES) == Ignore("sender is a bot")


def test_bot_command_is_ignored() -> None:
    payload = payload_of("wh_issue_comment_created.json")
    payload["sender"] = {"login": "some-ci[bot]", "id": 5, "type": "Bot"}
    assert qualify(delivery("issue_comment", payload), RULES) == Ignore("sender is a bot")


@pytest.mark.parametrize("login", ["repro-bot[bot]", "Repro-Bot", "repro-bot"])
def test_our_own_app_is_ignored(login: str) -> None:
    d = labeled()
    d.payload["sender"] = {"login": login, "id": 9, "type": "User"}
    assert qualify(d, RULES) == Ignore("sender is our own app")


def test_closed_asks_to_cancel() -> None:
    payload = payload_of("wh_issues_opened.json") | {"action": "closed"}
    payload["issue"]["state"] = "closed"
    assert qualify(delivery("issues", payload), RULES) == Cancel("octo-org/hello-world", 42, "closed")


def test_closed_by_a_bot_still_cancels_but_not_by_our_own_app() -> None:
    payload = payload_of("wh_issues_opened.json") | {"action": "closed"}
    payload["sender"] = {"login": "stale[bot]", "id": 3, "type": "Bot"}
    assert isinstance(qualify(delivery("issues", payload), RULES), Cancel)
    payload["sender"] = {"login": "repro-bot[bot]", "id": 9, "type": "Bot"}
    assert qualify(delivery("issues", payload), RULES) == Ignore("sender is our own app")


def test_unlabeled_last_required_label_asks_to_cancel() -> None:
    d = labeled(NEEDS, [BUG])
    d.payload["action"] = "unlabeled"
    assert qualify(d, RULES) == Cancel("octo-org/hello-world", 42, "label_removed")


def test_unlabeled_while_another_required_label_remains_is_ignored() -> None:
    rules = Rules(required_labels=("needs-reproduction", "repro"))
    other = NEEDS | {"name": "repro"}
    d = labeled(NEEDS, [BUG, other])
    d.payload["action"] = "unlabeled"
    assert qualify(d, rules) == Ignore("issue still carries a required label")


def test_unlabeled_other_label_is_ignored() -> None:
    d = labeled(BUG, [NEEDS])
    d.payload["action"] = "unlabeled"
    assert qualify(d, RULES) == Ignore("label 'bug' is not a required label")


@pytest.mark.parametrize(
    ("event", "action", "reason"),
    [("issues", "edited", "issues.edited is not handled"),
     ("issues", "assigned", "issues.assigned is not handled"),
     ("push", "", "event 'push' is not handled"),
     ("pull_request", "labeled", "event 'pull_request' is not handled")],
)
def test_unhandled_events_are_ignored_with_reason(event: str, action: str, reason: str) -> None:
    decision = qualify(delivery(event, {"action": action}), RULES)
    assert decision == Ignore(reason)
    assert decision.status == 202


@pytest.mark.parametrize(
    "breakage",
    [lambda p: p.pop("issue"), lambda p: p["issue"].pop("number"), lambda p: p["issue"].update(number="42"),
     lambda p: p["issue"].update(number=True), lambda p: p["repository"].update(full_name="no slash"),
     lambda p: p.pop("sender"), lambda p: p["label"].pop("name"), lambda p: p["issue"].update(labels="x")],
)
def test_malformed_payload_of_a_handled_event_is_bad_request(breakage: Any) -> None:
    payload = payload_of("wh_issues_labeled.json")
    breakage(payload)
    with pytest.raises(BadRequest):
        qualify(delivery("issues", payload), RULES)


def test_huge_issue_body_is_capped_by_json_size() -> None:
    d = labeled()
    d.payload["issue"]["body"] = "\u0001" * 70_000  # escapes to 6 bytes each in JSON
    decision = qualify(d, RULES)
    assert isinstance(decision, Receive)
    encoded = json.dumps(decision.data["body"], ensure_ascii=False).encode()
    assert MAX_BODY_JSON_BYTES - 6 < len(encoded) <= MAX_BODY_JSON_BYTES


def test_cap_json_size_keeps_short_text_and_never_splits_a_character() -> None:
    assert cap_json_size("abc", 100) == "abc"
    capped = cap_json_size("😀" * 100, 42)
    assert capped == "😀" * 10  # 2 quotes + 10 * 4 bytes


@pytest.mark.parametrize(
    ("event", "name"),
    [("issues", "wh_issues_labeled.json"), ("issues", "wh_issues_opened.json"),
     ("issue_comment", "wh_issue_comment_created.json")],
)
def test_receive_data_plus_run_is_a_valid_issue_received(event: str, name: str) -> None:
    from gip.domain import schemas
    from gip.domain.envelope import Cause, issue_stream, new_event

    decision = qualify(delivery(event, payload_of(name)), RULES)
    assert isinstance(decision, Receive)
    envelope = new_event("IssueReceived", stream=issue_stream(decision.repo, decision.number),
                         data={**decision.data, "run": 1}, cause=Cause(correlation_id="d-1", actor="webhook"))
    schemas.validate({**envelope, "version": 1})


# ---------------------------------------------------------------- issue 19 §4


@pytest.mark.parametrize("action", ["labeled", "unlabeled"])
def test_a_label_event_without_label_is_ignored_not_refused(action: str) -> None:
    payload = payload_of("wh_issues_labeled.json")
    payload["action"] = action
    del payload["label"]
    decision = qualify(delivery("issues", payload), RULES)
    assert isinstance(decision, Ignore) and "without a label" in decision.reason


@pytest.mark.parametrize("action", ["transferred", "deleted"])
def test_a_transferred_or_deleted_issue_cancels_its_waiting_run(action: str) -> None:
    payload = payload_of("wh_issues_labeled.json")
    payload["action"] = action
    payload.pop("label")
    decision = qualify(delivery("issues", payload), RULES)
    assert isinstance(decision, Cancel) and decision.reason == action


def test_a_command_is_keyed_by_its_comment_id() -> None:
    payload = payload_of("wh_issue_comment_created.json")
    decision = qualify(delivery("issue_comment", payload), RULES)
    assert isinstance(decision, Receive)
    assert decision.dedupe_key == f"comment-{payload['comment']['id']}"
    labelled = qualify(labeled(), RULES)
    assert isinstance(labelled, Receive) and labelled.dedupe_key == ""
