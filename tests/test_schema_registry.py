"""The schema registry gets what a bus subscriber receives, as OpenApi3 (issue 20 §8).

Samples are real envelopes (``new_event``), accepted by the store's 2020-12 schemas, wrapped
as EventBridge delivers them from the PutEvents entry ``gip.services.publisher`` builds.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_openapi

from gip.cli import schema_registry
from gip.cli.schema_registry import SchemaRenderError, event_document, render
from gip.domain import schemas
from gip.domain.envelope import Cause, dumps, new_event
from gip.services.publisher import entry_for
from tests.deploy_support import RecordingReporter

SOURCE = "github-issue-processor"
ISSUE = "issue-octo/repo#7"
ACCOUNT = "account-123456789012"
SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("IssueReceived", ISSUE, {"repo": "octo/repo", "number": 7, "title": "boom", "labels": ["needs-reproduction"],
                              "trigger": "labeled", "sender": "alice", "html_url": "https://github.com/octo/repo/issues/7",
                              "run": 1}),
    ("IssueProcessed", ISSUE, {"run": 1, "verdict": "reproduced", "exit_code": 1, "duration_s": 1.5,
                               "result_uri": "s3://b/k"}),
    ("IssueProcessingFailed", ISSUE, {"run": 1, "error": "boom", "retryable": True, "attempt": 2}),
    ("IssueSkipped", ISSUE, {"reason": "closed"}),
    ("AccountRegistered", ACCOUNT, {"account_id": "123456789012", "source": "stackset",
                                    "role_arn": "arn:aws:iam::123456789012:role/gip-processing"}),
    ("AccountReserved", ACCOUNT, {"lease_id": "L1", "issue": ISSUE, "worker": "w1",
                                  "expires_at": "2026-11-29T20:00:00.000Z"}),
    ("AccountCleaned", ACCOUNT, {"lease_id": "L1", "removed": ["stack/a", "bucket/b"]}),
]


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in schema_registry.documents(SOURCE).items()}


def bus_event(type_: str, stream: str, data: dict[str, Any], *, cause: Cause | None = None) -> dict[str, Any]:
    """What a rule target receives for a stored event: the publisher's entry, as delivered."""
    envelope = dict(new_event(type_, stream=stream, data=data, cause=cause or Cause("delivery-1", "webhook")))
    envelope["version"] = 3
    schemas.validate(envelope)  # a real event: the store accepts it
    entry = entry_for({"body": {"S": dumps(envelope)}}, source=SOURCE, bus_name="bus")
    assert entry is not None
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": entry["DetailType"], "source": entry["Source"],
            "account": "123456789012", "time": "2026-11-29T20:00:00Z", "region": "us-east-1", "resources": [],
            "detail": json.loads(entry["Detail"])}


def validator(doc: dict[str, Any], cls: Any = OAS30Validator) -> Any:
    """A validator rooted at the AWSEvent schema: OpenAPI 3.0's (draft-04 plus ``nullable``)
    by default, or plain ``Draft4Validator``."""
    return cls({"$ref": "#/components/schemas/AWSEvent", "components": doc["components"]})


def test_every_event_type_is_registered_as_the_documented_awsevent_shape(docs: dict[str, dict[str, Any]]) -> None:
    assert set(docs) == set(schemas.event_types())
    for type_, doc in docs.items():
        validate_openapi(doc)  # a valid OpenAPI 3.0 document
        wrapper = doc["components"]["schemas"]["AWSEvent"]
        assert wrapper["x-amazon-events-detail-type"] == type_ and wrapper["x-amazon-events-source"] == SOURCE
        assert wrapper["properties"]["detail"] == {"$ref": f"#/components/schemas/{type_}"}
        assert {"detail", "detail-type", "source", "time", "id", "account", "region", "resources", "version"} == set(
            wrapper["required"])


def test_every_rendered_schema_is_valid_draft_04_without_2020_12_keywords(docs: dict[str, dict[str, Any]]) -> None:
    for doc in docs.values():
        for schema in doc["components"]["schemas"].values():
            Draft4Validator.check_schema(schema)
            text = json.dumps(schema)
            for keyword in ('"const"', '"$defs"', '"$schema"', '"$id"', '"type": ['):
                assert keyword not in text


@pytest.mark.parametrize(("type_", "stream", "data"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_bus_events_validate_against_their_registered_schema(
        docs: dict[str, dict[str, Any]], type_: str, stream: str, data: dict[str, Any]) -> None:
    event = bus_event(type_, stream, data, cause=Cause("delivery-1", "worker", causation_id=str(uuid.uuid4())))
    validator(docs[type_], Draft4Validator).validate(event)  # no nulls: draft-04 alone accepts it
    validator(docs[type_]).validate(event)
    validator(docs[type_]).validate(bus_event(type_, stream, data))  # causation_id null: nullable


def test_null_values_validate_through_nullable(docs: dict[str, dict[str, Any]]) -> None:
    event = bus_event("IssueProcessed", ISSUE, {**SAMPLES[1][2], "exit_code": None})
    assert event["detail"]["causation_id"] is None
    validator(docs["IssueProcessed"]).validate(event)
    event["detail"]["data"]["exit_code"] = "1"  # nullable widens the type by null only
    assert not validator(docs["IssueProcessed"]).is_valid(event)


def test_what_the_store_refuses_the_registered_schema_refuses_too(docs: dict[str, dict[str, Any]]) -> None:
    good = bus_event("IssueProcessed", ISSUE, SAMPLES[1][2])
    check = validator(docs["IssueProcessed"])
    bad_verdict = json.loads(json.dumps(good))
    bad_verdict["detail"]["data"]["verdict"] = "maybe"
    other_type = json.loads(json.dumps(good))
    other_type["detail"]["type"] = "IssueQueued"  # const -> enum of one
    missing = json.loads(json.dumps(good))
    del missing["detail"]["data"]["result_uri"]
    account_stream = json.loads(json.dumps(good))
    account_stream["detail"]["stream"] = ACCOUNT  # the envelope allows it, IssueProcessed does not
    extra = json.loads(json.dumps(good))
    extra["detail"]["surprise"] = 1  # the envelope's additionalProperties: false
    no_detail = {k: v for k, v in good.items() if k != "detail"}
    for event in (bad_verdict, other_type, missing, account_stream, extra, no_detail):
        assert not check.is_valid(event)


def test_render_turns_2020_12_keywords_into_openapi_3_0() -> None:
    assert render({"const": "A"}) == {"enum": ["A"]}
    assert render({"type": ["integer", "null"]}) == {"type": "integer", "nullable": True}
    assert render({"type": "number", "exclusiveMinimum": 0}) == {"type": "number", "minimum": 0,
                                                                 "exclusiveMinimum": True}
    assert render({"type": "array", "items": {"const": 1}}) == {"type": "array", "items": {"enum": [1]}}
    assert render({"anyOf": [{"const": 1}, {"type": ["string", "null"]}]}) == {
        "anyOf": [{"enum": [1]}, {"type": "string", "nullable": True}]}


def test_defs_and_refs_move_to_components() -> None:
    envelope = {"type": "object", "properties": {"data": {"type": "object"}}, "required": ["data"]}
    specific = {"$defs": {"Lease": {"type": "object", "properties": {"id": {"const": "x"}}}},
                "properties": {"data": {"type": "object", "properties": {"lease": {"$ref": "#/$defs/Lease"}}}}}
    doc = event_document("T", source="s", envelope=envelope, specific=specific)
    comps = doc["components"]["schemas"]
    assert comps["T_Lease"] == {"type": "object", "properties": {"id": {"enum": ["x"]}}}
    assert comps["T"]["properties"]["data"]["properties"]["lease"] == {"$ref": "#/components/schemas/T_Lease"}
    validate_openapi(doc)
    check = validator(doc)
    detail = {"data": {"lease": {"id": "x"}}}
    base = {"version": "0", "id": "i", "detail-type": "T", "source": "s", "account": "1", "time": "t",
            "region": "r", "resources": []}
    assert check.is_valid({**base, "detail": detail})
    assert not check.is_valid({**base, "detail": {"data": {"lease": {"id": "y"}}}})


@pytest.mark.parametrize("schema", [{"if": {"type": "string"}}, {"type": ["string", "integer"]},
                                    {"$ref": "other.json"}, {"prefixItems": []}])
def test_what_openapi_3_0_cannot_express_is_refused_in_one_line(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaRenderError) as info:
        render(schema)
    assert "\n" not in str(info.value)


class FakeSchemas:
    """The EventSchemas calls register makes (moto has no EventSchemas API)."""

    def __init__(self, stored: dict[str, dict[str, str]] | None = None) -> None:
        self.stored = stored or {}
        self.writes: list[tuple[str, str]] = []

    def describe_schema(self, RegistryName: str, SchemaName: str) -> dict[str, str]:
        if SchemaName not in self.stored:
            raise botocore.exceptions.ClientError({"Error": {"Code": "NotFoundException"}}, "DescribeSchema")
        return self.stored[SchemaName]

    def create_schema(self, **kw: str) -> None:
        self.stored[kw["SchemaName"]] = {"Content": kw["Content"], "Type": kw["Type"]}
        self.writes.append((kw["SchemaName"], kw["Type"]))

    update_schema = create_schema


def test_schemas_are_registered_once_as_openapi3_and_updated_only_when_changed() -> None:
    fake, reporter = FakeSchemas(), RecordingReporter()
    count = len(schemas.event_types())
    assert schema_registry.register(fake, registry="r", source=SOURCE, reporter=reporter) == count
    assert {t for _, t in fake.writes} == {"OpenApi3"} and "envelope" not in fake.stored
    assert schema_registry.register(fake, registry="r", source=SOURCE, reporter=reporter) == 0
    assert len(fake.writes) == count and reporter.notices == []


def test_a_draft4_schema_from_an_earlier_deploy_is_replaced_by_openapi3() -> None:
    content = schema_registry.documents(SOURCE)["IssueQueued"]
    fake = FakeSchemas({"IssueQueued": {"Content": content, "Type": "JSONSchemaDraft4"}})
    schema_registry.register(fake, registry="r", source=SOURCE, reporter=RecordingReporter())
    assert ("IssueQueued", "OpenApi3") in fake.writes


def test_an_unrenderable_schema_is_one_notice_not_a_failed_deploy(tmp_path: Path) -> None:
    (tmp_path / "envelope.json").write_text(json.dumps({"type": "object"}))
    (tmp_path / "Odd.json").write_text(json.dumps({"properties": {"x": {"if": {}}}}))
    reporter = RecordingReporter()
    assert schema_registry.register(FakeSchemas(), registry="r", source=SOURCE, reporter=reporter,
                                    directory=tmp_path) == 0
    assert reporter.notices == ["schemas not registered: schema keyword 'if' has no OpenAPI 3.0 form"]
