"""SQS partial batch responses through Powertools' BatchProcessor, without a Lambda context."""

from __future__ import annotations

from typing import Any

from gip.adapters.sqs_batch import process_sqs_batch
from gip.cli import packaging


def batch(*ids: str) -> dict[str, Any]:
    return {"Records": [{"messageId": i, "body": i, "eventSource": "aws:sqs"} for i in ids]}


def test_only_the_records_that_raise_are_reported_failed() -> None:
    seen: list[str] = []

    def handle(record: Any) -> None:
        seen.append(record.body)
        if record.message_id == "b":
            raise RuntimeError("boom")

    assert process_sqs_batch(batch("a", "b", "c"), handle) == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert seen == ["a", "b", "c"]


def test_a_batch_that_fails_whole_is_an_answer_not_an_error() -> None:
    def handle(record: Any) -> None:
        raise RuntimeError("boom")

    assert process_sqs_batch(batch("a", "b"), handle) == {
        "batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}


def test_an_empty_or_scheduled_event_has_nothing_to_report() -> None:
    assert process_sqs_batch({"Records": []}, lambda r: None) == {"batchItemFailures": []}
    assert process_sqs_batch({"source": "aws.events"}, lambda r: None) == {"batchItemFailures": []}


def test_the_lambda_bundle_vendors_powertools() -> None:
    assert any(r.startswith("aws-lambda-powertools") for r in packaging.requirements(kind="lambda"))
