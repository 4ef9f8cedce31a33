"""gip.local.moto_transactions: moto's transaction backup copies what it touches, and a
cancelled transaction still leaves the table (items and stream) exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from gip.local import moto_transactions

TABLE = "t"


@pytest.fixture(autouse=True)
def pristine() -> Iterator[None]:
    """moto unpatched at the start (tests/conftest.py installs the patch for the whole session),
    and as the session had it after."""
    was = bool(moto_transactions._installed)
    moto_transactions.uninstall()
    yield
    moto_transactions.uninstall()
    if was:
        moto_transactions.install()


@pytest.fixture
def ddb() -> Iterator[Any]:
    with mock_aws():
        moto_transactions.install()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
            yield client
        finally:
            moto_transactions.uninstall()


def key(pk: str, sk: str = "0") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def stream_records(client: Any) -> list[str]:
    """The table's stream records, as ``GetRecords`` would list them (read from moto's shard:
    moto's in-process DescribeStream is not routed)."""
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[TABLE].stream_shard
    records = shard.get(shard.starting_sequence_number, 100)
    return [f"{r['eventName']} {r['dynamodb']['Keys']['pk']['S']}" for r in records]


def table_items() -> dict[Any, Any]:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[TABLE].items  # type: ignore[no-any-return]


def value(client: Any, pk: str) -> str | None:
    item = client.get_item(TableName=TABLE, Key=key(pk)).get("Item")
    return item["v"]["S"] if item else None


def transact(client: Any, *, fail: bool) -> None:
    client.transact_write_items(TransactItems=[
        {"Update": {"TableName": TABLE, "Key": key("a"), "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "2"}}}},
        {"Put": {"TableName": TABLE, "Item": {**key("b"), "v": {"S": "new"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"ConditionCheck": {"TableName": TABLE, "Key": key("c"),
                            "ConditionExpression": "attribute_exists(pk)" if fail else "attribute_not_exists(pk)"}},
    ])


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "1"}})
    ddb.put_item(TableName=TABLE, Item={**key("untouched"), "v": {"S": "x"}})
    before = stream_records(ddb)
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        transact(ddb, fail=True)  # the update of "a" was applied in place, then rolled back
    assert (value(ddb, "a"), value(ddb, "b"), value(ddb, "untouched")) == ("1", None, "x")
    assert stream_records(ddb) == before == ["INSERT a", "INSERT untouched"]


def test_the_backup_copies_only_what_the_transaction_names(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "1"}})
    ddb.put_item(TableName=TABLE, Item={**key("untouched"), "v": {"S": "x"}})
    (untouched,) = [rows for h, rows in table_items().items() if h.value == "untouched"]
    item = next(iter(untouched.values()))
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        transact(ddb, fail=True)
    (after,) = [rows for h, rows in table_items().items() if h.value == "untouched"]
    assert next(iter(after.values())) is item  # moto's deep copy would have made a new object


def test_a_transaction_that_passes_applies_every_write_and_streams_them(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "1"}})
    transact(ddb, fail=False)
    assert (value(ddb, "a"), value(ddb, "b")) == ("2", "new")
    assert stream_records(ddb) == ["INSERT a", "MODIFY a", "INSERT b"]


def test_uninstall_restores_moto() -> None:
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    moto_transactions.install()
    moto_transactions.install()  # idempotent
    assert models.DynamoDBBackend.transact_write_items is not original
    moto_transactions.uninstall()
    assert models.DynamoDBBackend.transact_write_items is original
    assert models.copy.deepcopy.__module__ == "copy"
