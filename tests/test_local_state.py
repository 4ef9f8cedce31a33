"""The local event log across a restart (issue 14 §1): saved whole, read strictly, appended
back through the store with the projections rebuilt by folding; never silently lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gip.errors import GipError
from gip.local import state
from gip.services.projection import Projections
from gip.store.memory import InMemoryEventStore
from gip.store.protocols import DeliveryMarker, DuplicateDelivery
from tests.test_replay import leasing_history


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
