"""The local event log across a restart (issue 14 §1): saved whole, read strictly, appended
back through the store with the projections rebuilt by folding; never silently lost."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from gip.domain.envelope import Cause, envelope_from_sqs_body
from gip.errors import GipError
from gip.local import requeue, state
from gip.services.issues import Issues
from gip.services.pool import Pool
from gip.services.projection import Projections
from gip.store.memory import InMemoryEventStore
from gip.store.protocols import DeliveryMarker, DuplicateDelivery
from tests.test_replay import leasing_history
from worker.messages import PROCESS, WAIT, message_action


def saved_history() -> state.Saved:
    core = leasing_history()  # two accounts, one issue run end to end, on the in-memory store
    events = [e for stream in core.store.streams.values() for e in stream]
    markers = [{"delivery_id": d, "occurred_at": at} for d, at in core.store.markers.items()]
    return state.Saved(events=sorted(events, key=lambda e: (e["stream"], e["version"])), markers=markers)


def test_a_saved_log_reads_back_exactly(tmp_path: Path) -> None:
    saved = saved_history()
    path = tmp_path / "state" / "events.jsonl"
    state.dump(saved, path)
    back = state.load(path)
    assert back is not None and back.events == saved.events and back.markers == saved.markers
    assert not path.with_name("events.jsonl.tmp").exists()
    assert state.load(tmp_path / "none.jsonl") is None


@pytest.mark.parametrize("damage", ["garbage", "truncate", "header", "empty", "binary"])
def test_an_unreadable_log_is_one_line_naming_the_file_and_is_left_alone(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "events.jsonl"
    state.dump(saved_history(), path)
    lines = path.read_bytes().splitlines(keepends=True)
    broken = {"garbage": b"".join(lines[:3]) + b"{not json\n" + b"".join(lines[3:]),
              "truncate": b"".join(lines[:-2]),
              "header": b'{"format": "other"}\n' + b"".join(lines[1:]),
              "empty": b"", "binary": b"\xff\xfe\x00"}[damage]
    path.write_bytes(broken)
    with pytest.raises(GipError) as info:
        state.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "--fresh" in message
    assert path.read_bytes() == broken  # nothing changed


def test_fresh_moves_the_old_log_aside_and_never_deletes_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert state.set_aside(path) is None
    state.dump(saved_history(), path)
    aside = state.set_aside(path)
    assert aside is not None and aside.exists() and not path.exists()
    assert state.load(aside) is not None


def test_appends_go_in_version_order_in_chunks_with_each_marker_beside_its_first_event() -> None:
    saved = saved_history()
    plan = list(state.appends(saved))
    for stream, after, events, _ in plan:
        assert [e["version"] for e in events] == list(range(after + 1, after + 1 + len(events)))
        assert {e["stream"] for e in events} == {stream} and len(events) <= state.CHUNK
    with_marker = [(stream, events[0]["type"]) for stream, _, events, rows in plan if rows]
    assert with_marker == [("issue-octo/demo#9", "IssueReceived")]


def test_restore_appends_through_the_store_and_folds_every_projection() -> None:
    saved = saved_history()
    store = InMemoryEventStore()
    assert state.restore(store, saved) == (len(saved.events), 1)
    assert sorted((e["stream"], e["version"]) for s in store.streams.values() for e in s) == \
        sorted((e["stream"], e["version"]) for e in saved.events)
    assert Projections(store).verify(list(saved.events)) == []  # replay --verify: no drift
    assert {a.status for a in store.accounts()} == {"AVAILABLE"}
    assert store.issue("issue-octo/demo#9").status == "PROCESSED"  # type: ignore[union-attr]
    row = store.counts_row()
    assert row is not None and row.counts.usable == 2 and row.first_day == saved.events[0]["occurred_at"][:10]
    # the old delivery is still a duplicate
    received = next(e for e in saved.events if e["type"] == "IssueReceived")
    with pytest.raises(DuplicateDelivery):
        store.append("issue-octo/demo#9", len(store.streams["issue-octo/demo#9"]), [received],
                     rows=[DeliveryMarker("delivery-9", received["occurred_at"])])


def test_items_of_the_events_table_become_events_and_markers_only() -> None:
    event = saved_history().events[0]
    items = [{"pk": {"S": event["stream"]}, "sk": {"N": "1"}, "body": {"S": json.dumps(event)}},
             {"pk": {"S": "delivery-d1"}, "sk": {"N": "0"}, "kind": {"S": "marker"}, "occurred_at": {"S": "t"}},
             {"pk": {"S": "log-days"}, "sk": {"N": "20260101"}, "kind": {"S": "day"}},
             {"pk": {"S": "oversized-d2"}, "sk": {"N": "0"}, "kind": {"S": "oversized"}}]
    saved = state.from_items(items)
    assert saved.events == [event] and saved.markers == [{"delivery_id": "d1", "occurred_at": "t"}]


def unfinished_history() -> tuple[InMemoryEventStore, Issues]:
    """Issue runs in every state, and an account being cleaned, on the in-memory store."""
    store = InMemoryEventStore()
    pool, issues = Pool(store=store), Issues(store=store)
    cause = Cause(correlation_id="d-0", actor="test")
    for account_id in ("400000000001", "400000000002"):
        pool.register(account_id, role_arn=f"arn:aws:iam::{account_id}:role/p", source="manual", cause=cause)
    for number in range(1, 8):
        issues.receive(delivery_id=f"d-{number}", repo="octo/demo", number=number, cause=cause, data={
            "title": "t", "labels": ["needs-reproduction"], "trigger": "labeled", "sender": "m",
            "html_url": f"https://github.com/octo/demo/issues/{number}", "repo": "octo/demo", "number": number})
        if number == 2:
            continue  # RECEIVED: the gatekeeper's message
        if number == 6:
            issues.record("octo/demo", 6, "IssueSkipped", {"run": 1, "reason": "not_allowed"}, cause=cause)
            continue
        issues.record("octo/demo", number, "IssueQueued", {"run": 1, "sender": "m", "permission": "write"}, cause=cause)
    for number, retryable in ((3, True), (4, False)):
        issues.record("octo/demo", number, "IssueProcessingFailed",
                      {"run": 1, "error": "boom", "retryable": retryable, "attempt": 1}, cause=cause)
    running = pool.reserve(issue="issue-octo/demo#5", worker="w", cause=cause)
    assert running is not None
    issues.record("octo/demo", 5, "IssueProcessingStarted", {"run": 1, "account_id": running.account_id,
                  "lease_id": running.lease_id, "worker": "w", "attempt": 1}, cause=cause)
    cleaning = pool.reserve(issue="issue-octo/demo#7", worker="w", cause=cause)
    assert cleaning is not None
    pool.release(cleaning.account_id, lease_id=cleaning.lease_id, cause=cause)  # CLEANING: the cleanup message
    return store, issues


def test_pending_names_each_message_the_live_path_would_still_hold() -> None:
    """Issue 14 §1: queued (1, 7), retryable (3) and running (5) runs → the issue queue; a run still
    RECEIVED (2) → the gatekeeper; the account being cleaned → the cleanup queue; a run failed for
    good (4) or skipped (6) → nothing; nor anything the bus only replayed."""
    store, _ = unfinished_history()
    events = [e for stream in store.streams.values() for e in stream]
    found = requeue.pending(events)
    assert sorted(e["stream"] for e in found["issues"]) == [f"issue-octo/demo#{n}" for n in (1, 3, 5, 7)]
    assert {e["type"] for e in found["issues"]} == {"IssueQueued"}
    assert [(e["stream"], e["type"]) for e in found["gatekeeper"]] == [("issue-octo/demo#2", "IssueReceived")]
    assert [e["type"] for e in found["cleanup"]] == ["AccountReleased"]
    replayed = [{**e, "replay": True} for e in events]
    assert requeue.pending(replayed) == {"gatekeeper": [], "issues": [], "cleanup": []}


@mock_aws
def test_send_makes_messages_the_worker_accepts() -> None:
    """What is sent is what the bus rule delivers: the worker's re-check of the issue stream takes a
    queued or retryable run (PROCESS) and holds a running one back for the sweeper (WAIT)."""
    store, issues = unfinished_history()
    events = [e for stream in store.streams.values() for e in stream]
    sqs = boto3.client("sqs", region_name="us-east-1")
    urls = {q: sqs.create_queue(QueueName=f"gip-{q}")["QueueUrl"] for q in ("gatekeeper", "issues", "cleanup")}
    sent = requeue.send(sqs, events, prefix="gip", account="123456789012", region="us-east-1")
    assert sent == {"gatekeeper": 1, "issues": 4, "cleanup": 1}
    actions = {}
    for _ in range(2):
        for msg in sqs.receive_message(QueueUrl=urls["issues"], MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(msg["Body"])
            assert body["source"] == "gip" and body["detail-type"] == "IssueQueued"
            event = envelope_from_sqs_body(msg["Body"])
            number = int(event["stream"].rsplit("#", 1)[1])
            actions[number] = message_action(issues.get("octo/demo", number), event["data"]["run"], max_attempts=3).kind
    assert actions == {1: PROCESS, 3: PROCESS, 5: WAIT, 7: PROCESS}
    (cleanup,) = sqs.receive_message(QueueUrl=urls["cleanup"])["Messages"]
    assert envelope_from_sqs_body(cleanup["Body"])["type"] == "AccountReleased"


COMMAND = {"title": "t", "labels": ["needs-reproduction"], "trigger": "command", "sender": "m", "command": "reproduce",
           "html_url": "https://github.com/octo/demo/issues/4", "repo": "octo/demo", "number": 4, "comment_id": 77}


def test_a_command_delivery_before_a_stop_is_a_duplicate_after_the_restore() -> None:
    """Issue 14 gap: a command's marker is keyed by its comment (``comment-77``), which no
    event's correlation id names; it goes back with the IssueReceived carrying that comment id,
    so the old ``/reproduce`` redelivered after a restart starts no new run."""
    before = InMemoryEventStore()
    issues = Issues(store=before)
    cause = Cause(correlation_id="delivery-of-the-comment", actor="test")
    assert issues.receive(delivery_id="comment-77", repo="octo/demo", number=4, data=COMMAND, cause=cause).appended
    issues.record("octo/demo", 4, "IssueSkipped", {"run": 1, "reason": "not_allowed"}, cause=cause)  # no longer active
    events = [e for stream in before.streams.values() for e in stream]
    saved = state.Saved(events=events, markers=[{"delivery_id": d, "occurred_at": at} for d, at in before.markers.items()])
    plan = [(events[0]["type"], rows) for _, _, events, rows in state.appends(saved) if rows]
    assert plan == [("IssueReceived", [{"delivery_id": "comment-77", "occurred_at": before.markers["comment-77"]}])]
    after = InMemoryEventStore()
    assert state.restore(after, saved) == (2, 1)
    again = Issues(store=after).receive(delivery_id="comment-77", repo="octo/demo", number=4, data=COMMAND, cause=cause)
    assert not again.appended and again.reason == "duplicate_delivery"
    fresh = Issues(store=InMemoryEventStore())  # without the marker the same comment would start a run
    state.restore(fresh.store, state.Saved(events=saved.events, markers=[]))
    assert fresh.receive(delivery_id="comment-77", repo="octo/demo", number=4, data=COMMAND, cause=cause).appended


def test_a_marker_no_event_names_is_restored_too() -> None:
    saved = saved_history()
    orphans = [{"delivery_id": f"orphan-{n}", "occurred_at": "2026-01-01T00:00:00.000Z"} for n in range(150)]
    saved.markers.extend(orphans)
    plan = list(state.appends(saved))
    assert all(len(events) + len(rows) <= state.MAX_ITEMS for _, _, events, rows in plan)
    store = InMemoryEventStore()
    assert state.restore(store, saved) == (len(saved.events), 151)
    assert {m["delivery_id"] for m in orphans} <= set(store.markers)
