"""The store's operational rows, one contract on both implementations: the GitHub rate gate
(:class:`~gip.store.protocols.RateGate`) and the redelivery marks
(:class:`~gip.store.protocols.RedeliveryMarks`); then what is DynamoDB's own: the rows keep the
keys and attributes the raw-boto3 versions wrote (a deployment upgrades with its rows in place)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import boto3
import pytest

from gip.errors import StoreUnavailable
from gip.store.dynamo_ops import DynamoRateGate, DynamoRedeliveryMarks
from gip.store.memory_ops import MemoryRateGate, MemoryRedeliveryMarks
from gip.store.protocols import GateState, RateGate, RedeliveryMarks
from tests.conftest import empty_tables

NOW = 1_700_000_000.0


class OpsContract:
    """``gates()`` / ``marks()`` give another view of the same rows: another container."""

    gates: Callable[[], RateGate]
    marks: Callable[[], RedeliveryMarks]

    def test_an_unknown_key_is_open(self) -> None:
        assert self.gates().state("token") == GateState()

    def test_a_block_is_seen_by_every_container_and_never_shortened(self) -> None:
        a, b = self.gates(), self.gates()
        a.block("token", NOW + 600, 1)
        assert b.state("token") == GateState(pytest.approx(NOW + 600), 1, 0.0)
        b.block("token", NOW + 60, 2)  # earlier: the block stays, the strikes are stored
        assert a.state("token").blocked_until == pytest.approx(NOW + 600)
        assert a.state("token").strikes == 2
        b.block("token", NOW + 900, 3)  # later: it moves
        assert a.state("token") == GateState(pytest.approx(NOW + 900), 3, 0.0)
        a.clear_strikes("token")
        assert b.state("token") == GateState(pytest.approx(NOW + 900), 0, 0.0)
        assert b.state("inst-2") == GateState()  # keys are separate

    def test_claimed_writes_are_spaced_across_containers_and_never_before_now(self) -> None:
        a, b = self.gates(), self.gates()
        slots = [gate.claim_write("token", now=NOW, interval=1.0) for gate in (a, b, a, b)]
        assert slots == pytest.approx([NOW, NOW + 1, NOW + 2, NOW + 3])
        assert a.claim_write("token", now=NOW + 100, interval=1.0) == pytest.approx(NOW + 100)
        assert b.state("token").next_write == pytest.approx(NOW + 101)

    def test_claims_and_blocks_keep_each_other(self) -> None:
        gate = self.gates()
        gate.claim_write("token", now=NOW, interval=1.0)
        gate.block("token", NOW + 60, 1)
        gate.claim_write("token", now=NOW, interval=1.0)
        gate.clear_strikes("token")
        assert gate.state("token") == GateState(pytest.approx(NOW + 60), 0, pytest.approx(NOW + 2))

    def test_a_mark_only_moves_up(self) -> None:
        a, b = self.marks(), self.marks()
        assert a.get("app") is None
        a.advance("app", 100)
        b.advance("app", 90)  # a slower sweep's mark is not written over a higher one
        assert b.get("app") == 100
        b.advance("app", 120)
        assert a.get("app") == 120 and a.get("repos/o/r/hooks/9") is None

    def test_the_hook_list_is_replaced_whole(self) -> None:
        a, b = self.marks(), self.marks()
        assert a.hooks() == []
        a.set_hooks(["repos/o/r/hooks/9", "orgs/o/hooks/3"])
        assert b.hooks() == ["repos/o/r/hooks/9", "orgs/o/hooks/3"]
        b.set_hooks([])
        assert a.hooks() == []


class TestMemoryOps(OpsContract):
    @pytest.fixture(autouse=True)
    def _rows(self) -> None:
        gate, marks = MemoryRateGate(), MemoryRedeliveryMarks()  # one process: one object
        self.gates = lambda: gate
        self.marks = lambda: marks


class TestDynamoOps(OpsContract):
    @pytest.fixture(autouse=True)
    def _rows(self, shared_core: SimpleNamespace) -> None:
        self.table = empty_tables(shared_core, pool=True).settings.pool_table
        self.gates = lambda: DynamoRateGate(self.table)  # each its own connection: a container
        self.marks = lambda: DynamoRedeliveryMarks(self.table)

    def item(self, pk: str) -> dict:
        return boto3.client("dynamodb").get_item(TableName=self.table, Key={"pk": {"S": pk}},
                                                 ConsistentRead=True)["Item"]

    def test_rows_keep_their_keys_and_attributes(self) -> None:
        gate, marks = self.gates(), self.marks()
        gate.block("token", NOW + 600.1234, 2)
        gate.claim_write("token", now=NOW, interval=1.0)
        marks.advance("app", 42)
        marks.set_hooks(["repos/o/r/hooks/9"])
        row = self.item("github-rate#token")
        assert {k: next(iter(v)) for k, v in row.items()} == {
            "pk": "S", "blocked_until": "N", "strikes": "N", "next_write": "N"}
        assert float(row["blocked_until"]["N"]) == pytest.approx(NOW + 600.123)  # to the ms
        assert row["strikes"] == {"N": "2"}
        assert self.item("redelivery-mark#app") == {"pk": {"S": "redelivery-mark#app"}, "mark": {"N": "42"},
                                                    "kind": {"S": "redelivery-mark"}}
        assert self.item("redelivery-hooks") == {"pk": {"S": "redelivery-hooks"}, "kind": {"S": "redelivery-hooks"},
                                                 "hooks": {"L": [{"S": "repos/o/r/hooks/9"}]}}

    def test_rows_written_by_the_raw_boto3_gate_are_read_and_claimed(self) -> None:
        ddb = boto3.client("dynamodb")
        ddb.put_item(TableName=self.table, Item={  # as the gate wrote them before (3 decimals)
            "pk": {"S": "github-rate#token"}, "blocked_until": {"N": f"{NOW + 60:.3f}"},
            "strikes": {"N": "1"}, "next_write": {"N": f"{NOW + 5.5:.3f}"}})
        ddb.put_item(TableName=self.table, Item={"pk": {"S": "redelivery-mark#app"}, "mark": {"N": "7"},
                                                 "kind": {"S": "redelivery-mark"}})
        gate = self.gates()
        assert gate.state("token") == GateState(pytest.approx(NOW + 60), 1, pytest.approx(NOW + 5.5))
        assert gate.claim_write("token", now=NOW, interval=1.0) == pytest.approx(NOW + 5.5)
        assert self.marks().get("app") == 7

    def test_a_claim_that_keeps_losing_the_race_is_a_clear_store_error(self) -> None:
        gate = self.gates()
        ddb = boto3.client("dynamodb")
        connection = gate.model._get_connection().connection
        call = connection.dispatch

        def rival(operation: str, kwargs: dict) -> dict:  # another container moves next_write
            if operation == "UpdateItem":                 # between every read and write
                ddb.update_item(TableName=self.table, Key={"pk": {"S": "github-rate#token"}},
                                UpdateExpression="ADD next_write :one",
                                ExpressionAttributeValues={":one": {"N": "1"}})
            return call(operation, kwargs)

        connection.dispatch = rival  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable, match="claim a GitHub write slot for token"):
            gate.claim_write("token", now=NOW, interval=1.0)

    def test_a_failing_table_is_a_store_error_not_a_traceback_of_botocore(self) -> None:
        gate = DynamoRateGate("no-such-table")
        with pytest.raises(StoreUnavailable, match="read the GitHub rate gate token"):
            gate.state("token")
        with pytest.raises(StoreUnavailable, match="advance the redelivery mark of app"):
            DynamoRedeliveryMarks("no-such-table").advance("app", 1)
