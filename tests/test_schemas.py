"""Schemas: every file is a valid schema; validation names the failing field; upcasting."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from gip.domain import schemas
from gip.domain.envelope import Cause, new_event
from gip.errors import InvalidEvent

CATALOG = {
    "WebhookRedeliveryRequested", "StatusCommentPosted",
    "IssueReceived", "IssueQueued", "IssueSkipped", "IssueProcessingStarted", "IssueProcessed",
    "IssueProcessingFailed", "AccountRegistered", "AccountReserved", "AccountLeaseRenewed",
    "AccountReleased", "AccountTimedOut", "AccountCleaned", "AccountCleanupFailed", "AccountQuarantined",
    "AccountDeregistered", "AccountReinstated",
}


def test_every_catalog_type_has_a_schema_that_passes_check_schema() -> None:
    assert set(schemas.event_types()) == CATALOG
    for path in schemas.SCHEMA_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        Draft202012Validator.check_schema(doc)


def event(type_: str, **data: object) -> dict:
    e = dict(new_event(type_, stream="account-123456789012", data=dict(data), cause=Cause("c", "t")))
    e["version"] = 1
    return e


def test_valid_event_passes() -> None:
    schemas.validate(event("AccountCleaned", lease_id="L", removed=["a"]))


def test_missing_field_is_named() -> None:
    with pytest.raises(InvalidEvent) as info:
        schemas.validate(event("AccountQuarantined", reason="x"))
    assert info.value.event_type == "AccountQuarantined"
    assert info.value.field == "data/attempts"
    assert "AccountQuarantined" in str(info.value) and "data/attempts" in str(info.value)


def test_wrong_type_and_bad_enum_are_named() -> None:
    with pytest.raises(InvalidEvent, match="data/removed"):
        schemas.validate(event("AccountCleaned", lease_id="L", removed="not-a-list"))
    with pytest.raises(InvalidEvent, match="data/reason"):
        schemas.validate(event("AccountDeregistered", reason="bored"))


def test_envelope_fields_are_checked() -> None:
    e = event("AccountCleaned", lease_id="L", removed=[])
    e["occurred_at"] = "yesterday"
    with pytest.raises(InvalidEvent, match="occurred_at"):
        schemas.validate(e)


def test_unknown_type_is_refused() -> None:
    e = event("AccountCleaned", lease_id="L", removed=[])
    e["type"] = "AccountExploded"
    with pytest.raises(InvalidEvent, match="unknown event type"):
        schemas.validate(e)


def test_upcaster_brings_v1_processing_failed_to_v2() -> None:
    v1 = {"type": "IssueProcessingFailed", "schema_version": 1, "data": {"run": 1, "error": "boom"}}
    v2 = schemas.upcast(v1)
    assert v2["schema_version"] == 2
    assert v2["data"] == {"run": 1, "error": "boom", "attempt": 1, "retryable": False}
    assert v1["schema_version"] == 1 and "attempt" not in v1["data"]  # pure: input untouched
    current = {**v2}
    assert schemas.upcast(current) is current
