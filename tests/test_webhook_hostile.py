"""Hostile but validly signed deliveries, against the real store on moto: a body that cannot be
represented is a 400 that appends nothing; nothing a payload holds ever makes a 5xx."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import boto3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as event_note
from hypothesis import strategies as st

from gip.domain.delivery import signature_for
from gip.services import webhook as webhook_service
from tests.conftest import empty_tables
from tests.test_webhook import RULES, SECRET, proxy_event, recorded

# Where a delivery's strings end up: stored in IssueReceived, matched as a command or a label.
FIELDS = {
    "wh_issues_labeled.json": [("issue", "title"), ("issue", "body"), ("sender", "login"),
                               ("label", "name"), ("repository", "full_name"),
                               ("issue", "html_url"), ("issue", "author_association"),
                               ("repository", "description")],
    "wh_issue_comment_created.json": [("comment", "body"), ("comment", "author_association"),
                                      ("issue", "title"), ("sender", "login")],
}
SURROGATE = st.characters(categories=["Cs"])
WITH_SURROGATE = st.builds(lambda a, s, b: a + s + b, st.text(max_size=20), SURROGATE,
                           st.text(max_size=20))
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)


@st.composite
def hostile_deliveries(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A recorded delivery with some strings replaced, signed; and whether it holds a surrogate."""
    name = draw(st.sampled_from(sorted(FIELDS)))
    headers, payload = recorded(name)
    payload = copy.deepcopy(payload)
    for parent, key in draw(st.lists(st.sampled_from(FIELDS[name]), min_size=1, max_size=3)):
        value = draw(st.one_of(WITH_SURROGATE, ANY_TEXT, st.just("/reproduce\n" + "x" * 70_000)))
        if name.startswith("wh_issue_comment") and key == "body" and draw(st.booleans()):
            value = "/reproduce\n" + value  # still a command
        payload[parent][key] = value
    if draw(st.booleans()):  # a label name, or a whole list of them, out of the ordinary
        extra = draw(st.lists(st.one_of(WITH_SURROGATE, ANY_TEXT), max_size=3))
        payload["issue"]["labels"] += [{"name": n} for n in extra]
    tainted = not representable(payload)
    # ensure_ascii: a surrogate travels as the escape "\udfff" in valid UTF-8 bytes, as an
    # attacker (or a buggy proxy) would send it.
    body = json.dumps(payload, separators=(",", ":")).encode("ascii")
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    headers["X-GitHub-Delivery"] = draw(st.uuids()).hex
    return proxy_event(headers, body, b64=draw(st.booleans())), tainted


def representable(payload: Any) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def events_table_items(core: SimpleNamespace) -> int:
    return int(boto3.client("dynamodb").scan(  # not the day index (gip.store.dynamodb.DAYS_PK)
        TableName=core.settings.events_table, Select="COUNT", FilterExpression="pk <> :d",
        ExpressionAttributeValues={":d": {"S": "log-days"}})["Count"])


# No shrink phase: every example writes to moto, and shrinking a 70 KB body takes minutes on a
# shared machine; the failing example is printed as drawn.
@settings(max_examples=120, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=hostile_deliveries())
def test_hostile_signed_body_is_never_5xx_and_unrepresentable_is_400_without_append(
        shared_core: SimpleNamespace, case: tuple[dict[str, Any], bool]) -> None:
    event, tainted = case
    core = empty_tables(shared_core)
    response = webhook_service.handle(event, rules=RULES, secrets=(SECRET,), max_bytes=1 << 20,
                              issues=lambda: core.issues)
    status, body = response["statusCode"], json.loads(response["body"])
    assert status in (202, 400), body
    event_note(f"{status} {body['status']}{' surrogate' if tainted else ''}")
    if tainted:
        assert status == 400 and "lone surrogate" in body["reason"], body
    if status != 202 or body["status"] != "accepted":
        assert events_table_items(core) == 0
    else:
        assert events_table_items(core) == 2  # the event and its delivery marker


def test_lone_surrogate_in_a_signed_title_is_400_with_a_reason(shared_core: SimpleNamespace) -> None:
    """The reproduction from the issue: JSON's "\\udfff" escape in a validly signed body."""
    core = empty_tables(shared_core)
    headers, payload = recorded("wh_issues_labeled.json")
    body = json.dumps(payload, separators=(",", ":")).encode().replace(
        b'"title":"', b'"title":"\\udfff', 1)
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    response = webhook_service.handle(proxy_event(headers, body), rules=RULES, secrets=(SECRET,),
                              max_bytes=1 << 20, issues=lambda: core.issues)
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {
        "status": "rejected",
        "reason": "body is not representable: issue.title holds a lone surrogate (U+DFFF), "
                  "which UTF-8 cannot encode"}
    assert events_table_items(core) == 0


def test_issue_fields_too_large_to_record_are_400(shared_core: SimpleNamespace) -> None:
    core = empty_tables(shared_core)
    headers, payload = recorded("wh_issues_labeled.json")
    payload["issue"]["labels"] += [{"name": f"l{i}-" + "x" * 900} for i in range(120)]
    body = json.dumps(payload).encode()
    headers["X-Hub-Signature-256"] = signature_for(body, SECRET)
    response = webhook_service.handle(proxy_event(headers, body), rules=RULES, secrets=(SECRET,),
                              max_bytes=1 << 20, issues=lambda: core.issues)
    assert response["statusCode"] == 400
    assert "too large to record" in json.loads(response["body"])["reason"]
    assert events_table_items(core) == 0
