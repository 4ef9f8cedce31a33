"""Storage trouble is a 5xx, never a conflict or a duplicate: DynamoDB faults injected in front
of moto (tests/fakes/aws_faults.py), through the store, the services and the webhook."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.domain.envelope import Cause, new_event
from gip.errors import ConcurrencyConflict, StoreUnavailable
from gip.services import webhook as webhook_service
from gip.store.protocols import DuplicateDelivery
from tests.conftest import empty_tables
from tests.fakes.aws_faults import AwsFaults, Fault
from tests.test_webhook import NUMBER, REPO, RULES, SECRET, STREAM, delivery

THROTTLED = Fault("ProvisionedThroughputExceededException", "The level of configured provisioned "
                  "throughput for the table was exceeded")
CAUSE = Cause(correlation_id="corr", actor="test")


@pytest.fixture
def core(shared_core: SimpleNamespace) -> Iterator[SimpleNamespace]:
    empty_tables(shared_core, pool=True)
    faults = AwsFaults(shared_core.tables.connection.client)
    yield SimpleNamespace(**vars(shared_core), faults=faults)
    faults.close()


def call(core: SimpleNamespace, event: dict[str, Any]) -> tuple[int, dict[str, str]]:
    response = webhook_service.handle(event, rules=RULES, secrets=(SECRET,), max_bytes=1 << 20,
                              issues=lambda: core.issues)
    return response["statusCode"], json.loads(response["body"])


def items(core: SimpleNamespace) -> list[dict[str, Any]]:
    """The events table's items, except the day index (put before a day's first event, by design)."""
    found = boto3.client("dynamodb").scan(TableName=core.settings.events_table)["Items"]
    return [item for item in found if item["pk"]["S"] != "log-days"]


def cleaned(n: int) -> Any:
    return new_event("AccountCleaned", stream="account-111122223333", cause=CAUSE,
                     data={"lease_id": f"L{n}", "removed": []})


# --- the store: which failures are conflicts ---------------------------------------------------


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException",
                                  "ValidationException", "InternalServerError"])
def test_failed_single_put_that_is_not_a_condition_is_store_unavailable(core: SimpleNamespace,
                                                                        code: str) -> None:
    core.faults.fail("PutItem", Fault(code))
    with pytest.raises(StoreUnavailable) as info:
        core.store.append("account-111122223333", 0, [cleaned(1)])
    assert info.value.code == code and code in str(info.value)
    assert core.store.read("account-111122223333") == []


@pytest.mark.parametrize("reasons", [
    ["None", "ThrottlingError", "None"],
    ["ThrottlingError", "ThrottlingError", "ThrottlingError"],
    ["ConditionalCheckFailed", "ValidationError", "None"],  # a condition AND a storage failure
])
def test_transaction_cancelled_for_storage_reasons_is_store_unavailable(
        core: SimpleNamespace, reasons: list[str]) -> None:
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException", reasons=reasons))
    with pytest.raises(StoreUnavailable, match="Error"):
        core.issues.receive(delivery_id="d-1", repo=REPO, number=NUMBER, data=received_data(),
                            cause=CAUSE)


def test_cancellation_reasons_that_do_not_match_the_items_are_store_unavailable(
        core: SimpleNamespace) -> None:
    core.faults.fail("TransactWriteItems",
                     Fault("TransactionCanceledException", reasons=["ConditionalCheckFailed"]))
    with pytest.raises(StoreUnavailable, match="1 cancellation reasons for 3 items"):
        core.issues.receive(delivery_id="d-1", repo=REPO, number=NUMBER, data=received_data(),
                            cause=CAUSE)


def test_condition_failed_on_the_delivery_marker_is_a_duplicate(core: SimpleNamespace) -> None:
    # order: event put, then puts in row order: the issue row, then the marker
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["None", "None", "ConditionalCheckFailed"]))
    result = core.issues.receive(delivery_id="d-1", repo=REPO, number=NUMBER, data=received_data(),
                                 cause=CAUSE)
    assert (result.appended, result.reason) == (False, "duplicate_delivery")


def test_condition_failed_on_the_issue_row_is_a_conflict(core: SimpleNamespace) -> None:
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["None", "ConditionalCheckFailed"]))
    with pytest.raises(ConcurrencyConflict, match="projection row changed"):
        core.issues.record(REPO, NUMBER, "IssueReceived", {**received_data(), "run": 1}, cause=CAUSE)


def test_condition_failed_on_the_unconditioned_counts_row_is_store_unavailable(
        core: SimpleNamespace) -> None:
    # register = event + account row (puts) + counts row (update, no condition)
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["None", "None", "ConditionalCheckFailed"]))
    with pytest.raises(StoreUnavailable, match="counts"):
        core.pool.register("111122223333", role_arn="arn:aws:iam::111122223333:role/r",
                           source="manual", cause=CAUSE)


def test_transaction_conflict_is_contention_not_a_duplicate(core: SimpleNamespace) -> None:
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["None", "TransactionConflict"]))
    with pytest.raises(ConcurrencyConflict, match="transaction conflict"):
        core.issues.record(REPO, NUMBER, "IssueReceived", {**received_data(), "run": 1}, cause=CAUSE)


def test_throttled_read_is_store_unavailable(core: SimpleNamespace) -> None:
    core.faults.fail("Query", Fault("ThrottlingException"))
    with pytest.raises(StoreUnavailable, match="ThrottlingException"):
        core.store.read(STREAM)
    core.faults.fail("GetItem", Fault("InternalServerError", status=500))
    with pytest.raises(StoreUnavailable, match="InternalServerError"):
        core.issues.get(REPO, NUMBER)


# --- the pool: a throttled command is not a lost race ------------------------------------------


def test_throttled_register_raises_instead_of_reporting_already_registered(
        core: SimpleNamespace) -> None:
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["ThrottlingError", "None", "None"]))
    with pytest.raises(StoreUnavailable):
        core.pool.register("111122223333", role_arn="arn:aws:iam::111122223333:role/r",
                           source="manual", cause=CAUSE)
    assert core.pool.get("111122223333") is None
    assert core.pool.register("111122223333", role_arn="arn:aws:iam::111122223333:role/r",
                              source="manual", cause=CAUSE) is not None


def test_throttled_reserve_raises_instead_of_reporting_no_account(core: SimpleNamespace) -> None:
    core.pool.register("111122223333", role_arn="arn:aws:iam::111122223333:role/r",
                       source="manual", cause=CAUSE)
    core.faults.fail("TransactWriteItems", Fault("TransactionCanceledException",
                                                 reasons=["None", "ThrottlingError"]), times=5)
    with pytest.raises(StoreUnavailable):
        core.pool.reserve(issue=STREAM, worker="w", cause=CAUSE)
    assert core.pool.get("111122223333").status == "AVAILABLE"


# --- the webhook: 500 on storage trouble, 202 only on evaluated conditions ----------------------


@pytest.mark.parametrize("fault", [
    THROTTLED,
    Fault("ThrottlingException", "Rate of requests exceeds the allowed throughput"),
    Fault("TransactionCanceledException", reasons=["ThrottlingError", "None", "None"]),
    Fault("ValidationException", "Item size has exceeded the maximum allowed size"),
    Fault("InternalServerError", status=500),
])
def test_failed_write_is_500_and_redelivery_then_succeeds(
        core: SimpleNamespace, fault: Fault, caplog: pytest.LogCaptureFixture) -> None:
    core.faults.fail("TransactWriteItems", fault)
    with caplog.at_level(logging.INFO, logger="gip.services.webhook"):
        status, body = call(core, delivery("wh_issues_labeled.json"))
    assert (status, body) == (500, {"status": "error",
                                    "reason": "could not store the delivery; redeliver it"})
    assert fault.code in caplog.text and "Traceback" not in caplog.text
    assert items(core) == [] and core.issues.get(REPO, NUMBER) is None
    # GitHub's redelivery (same id) once storage is back: recorded exactly once
    assert call(core, delivery("wh_issues_labeled.json")) == (
        202, {"status": "accepted", "reason": "run 1 received"})
    assert len(core.store.read(STREAM)) == 1


def test_throttled_read_before_the_write_is_500(core: SimpleNamespace) -> None:
    core.faults.fail("TransactGetItems", Fault("ThrottlingException"))
    assert call(core, delivery("wh_issues_labeled.json"))[0] == 500
    assert items(core) == []


def test_exact_redelivery_after_success_is_202_duplicate_without_a_write(
        core: SimpleNamespace) -> None:
    assert call(core, delivery("wh_issues_labeled.json"))[1]["status"] == "accepted"
    writes = core.faults.calls["TransactWriteItems"]
    assert call(core, delivery("wh_issues_labeled.json")) == (
        202, {"status": "ignored", "reason": "duplicate delivery"})
    assert core.faults.calls["TransactWriteItems"] == writes
    assert len(core.store.read(STREAM)) == 1


def test_contention_that_persists_is_500_never_already_active(core: SimpleNamespace) -> None:
    contention = Fault("TransactionCanceledException", reasons=["None", "TransactionConflict", "None"])
    core.faults.fail("TransactWriteItems", contention, times=2)
    assert call(core, delivery("wh_issues_labeled.json"))[0] == 500
    assert core.issues.get(REPO, NUMBER) is None


def test_contention_once_is_decided_again_and_accepted(core: SimpleNamespace) -> None:
    contention = Fault("TransactionCanceledException", reasons=["None", "TransactionConflict", "None"])
    core.faults.fail("TransactWriteItems", contention)
    assert call(core, delivery("wh_issues_labeled.json")) == (
        202, {"status": "accepted", "reason": "run 1 received"})


def received_data() -> dict[str, Any]:
    return {"repo": REPO, "number": NUMBER, "title": "t", "labels": ["needs-reproduction"],
            "trigger": "labeled", "sender": "monalisa", "html_url": "https://github.com/x"}


def test_duplicate_delivery_error_names_the_delivery() -> None:
    assert "d-9" in str(DuplicateDelivery("d-9"))
