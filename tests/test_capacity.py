"""Capacity: MaxCapacity follows the usable count; a run that changes nothing writes nothing."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.domain import metrics
from gip.domain.envelope import Cause
from gip.services import capacity as capacity_service
from handlers import capacity as cap
from tests.conftest import new_container

CLUSTER, SERVICE = "gip-test", "gip-test-worker"
RESOURCE = f"service/{CLUSTER}/{SERVICE}"


# --------------------------------------------------------------------------- pure


def test_decide_sets_max_to_the_usable_count() -> None:
    assert capacity_service.decide(capacity_service.Target(0, 2), 5) == capacity_service.Change(0, 5)


def test_decide_makes_no_change_when_already_right() -> None:
    assert capacity_service.decide(capacity_service.Target(0, 5), 5) is None
    assert capacity_service.decide(capacity_service.Target(1, 5), 5) is None


def test_decide_lowers_min_with_max_because_max_below_min_is_refused() -> None:
    assert capacity_service.decide(capacity_service.Target(2, 5), 1) == capacity_service.Change(1, 1)
    assert capacity_service.decide(capacity_service.Target(2, 5), 0) == capacity_service.Change(0, 0)


def test_decide_registers_a_missing_target_from_zero() -> None:
    assert capacity_service.decide(None, 3) == capacity_service.Change(0, 3)
    assert capacity_service.decide(None, -1) == capacity_service.Change(0, 0)


# --------------------------------------------------------------------------- moto


@pytest.fixture
def world(core: SimpleNamespace) -> SimpleNamespace:
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(family="worker", containerDefinitions=[
        {"name": "worker", "image": "worker:latest", "memory": 512}])
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition="worker", desiredCount=0)
    scaling = boto3.client("application-autoscaling", region_name="us-east-1")
    writes: list[dict[str, Any]] = []
    scaling.meta.events.register(
        "provide-client-params.application-autoscaling.RegisterScalableTarget",
        lambda params, **_: writes.append(dict(params)))
    capacity = capacity_service.Capacity(core.pool, scaling, cluster=CLUSTER, service=SERVICE)
    return SimpleNamespace(core=core, pool=core.pool, scaling=scaling, writes=writes, capacity=capacity)


def register(world: SimpleNamespace, *accounts: str) -> None:
    for account in accounts:
        world.pool.register(account, role_arn=f"arn:aws:iam::{account}:role/r", source="stackset",
                            cause=Cause("t", "test"))


def max_capacity(world: SimpleNamespace) -> tuple[int, int]:
    [target] = world.scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[RESOURCE])["ScalableTargets"]
    return target["MinCapacity"], target["MaxCapacity"]


def test_max_capacity_follows_the_usable_count_and_a_rerun_makes_no_write(world: SimpleNamespace) -> None:
    world.scaling.register_scalable_target(ServiceNamespace="ecs", ResourceId=RESOURCE,
                                           ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=1)
    world.writes.clear()
    register(world, "100000000001", "100000000002", "100000000003")

    assert world.capacity.sync() == capacity_service.Change(0, 3)
    assert max_capacity(world) == (0, 3)
    assert len(world.writes) == 1

    assert world.capacity.sync() is None  # already right: describe only
    assert len(world.writes) == 1


def test_a_fully_busy_pool_keeps_its_capacity(world: SimpleNamespace) -> None:
    register(world, "100000000001", "100000000002")
    world.capacity.sync()
    for n in (1, 2):
        assert world.pool.reserve(issue=f"issue-o/r#{n}", worker="w", cause=Cause("t", "test")) is not None
    writes = len(world.writes)
    assert world.capacity.sync() is None  # RESERVED still counts as usable
    assert max_capacity(world) == (0, 2) and len(world.writes) == writes


def test_deregistering_lowers_max_capacity_and_min_with_it(world: SimpleNamespace) -> None:
    register(world, "100000000001", "100000000002")
    world.scaling.register_scalable_target(ServiceNamespace="ecs", ResourceId=RESOURCE,
                                           ScalableDimension="ecs:service:DesiredCount", MinCapacity=2, MaxCapacity=2)
    world.pool.deregister("100000000002", reason="closed", cause=Cause("t", "test"))
    assert world.capacity.sync() == capacity_service.Change(1, 1)
    assert max_capacity(world) == (1, 1)


def test_a_missing_target_is_registered(world: SimpleNamespace) -> None:
    register(world, "100000000001")
    assert world.capacity.sync() == capacity_service.Change(0, 1)
    assert max_capacity(world) == (0, 1)
    assert world.writes[-1]["ResourceId"] == RESOURCE


def test_sqs_batch_syncs_once_and_reports_every_record_on_failure(world: SimpleNamespace,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    register(world, "100000000001")
    monkeypatch.setattr(cap, "_service", lambda: world.capacity)
    batch = {"Records": [{"messageId": "m1", "body": "{}"}, {"messageId": "m2", "body": "{}"}]}
    assert cap.lambda_handler(batch, None) == {"batchItemFailures": []}
    assert len(world.writes) == 1  # one sync for the whole batch

    broken = capacity_service.Capacity(world.pool, world.scaling, cluster="nope", service="missing")
    monkeypatch.setattr(cap, "_service", lambda: broken)
    assert cap.lambda_handler(batch, None) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    with pytest.raises(capacity_service.AwsError, match="service/nope/missing"):
        cap.lambda_handler({"source": "aws.scheduler"}, None)  # the schedule: fail loudly


def test_every_sync_publishes_the_usable_and_available_counts(world: SimpleNamespace) -> None:
    batches: list[list[metrics.Point]] = []
    register(world, "100000000001", "100000000002")
    capacity = capacity_service.Capacity(world.pool, world.scaling, cluster=CLUSTER, service=SERVICE,
                                         metrics=batches.append)
    capacity.sync()
    assert world.pool.reserve(issue="issue-o/r#1", worker="w", cause=Cause("t", "test")) is not None
    capacity.sync()  # no write, but the alarm still gets its data point
    assert len(batches) == 2
    assert {p.name: p.value for p in batches[-1]} == {"UsableAccounts": 2, "AvailableAccounts": 1}


def test_an_unreadable_pool_scan_leaves_out_only_the_available_gauge(world: SimpleNamespace) -> None:
    batches: list[list[metrics.Point]] = []
    register(world, "100000000001")

    class NoScan(SimpleNamespace):
        def accounts(self) -> list[Any]:
            raise RuntimeError("AccessDenied: dynamodb:Scan")

    pool = NoScan(counts=world.pool.counts)
    capacity = capacity_service.Capacity(pool, world.scaling, cluster=CLUSTER, service=SERVICE,
                                         metrics=batches.append)
    assert capacity.sync() == capacity_service.Change(0, 1)  # the sync itself goes on
    assert [(p.name, p.value) for p in batches[0]] == [("UsableAccounts", 1)]


def test_cluster_and_service_are_required(world: SimpleNamespace) -> None:
    with pytest.raises(capacity_service.ConfigError, match="CLUSTER_NAME"):
        capacity_service.Capacity(world.pool, world.scaling, cluster="", service=SERVICE)


def test_lambda_entry_builds_from_the_template_environment(world: SimpleNamespace,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    new_container(monkeypatch, cap)
    for name, value in {"GIP_PREFIX": world.core.settings.prefix, "ECS_CLUSTER": CLUSTER,
                        "ECS_SERVICE": SERVICE}.items():
        monkeypatch.setenv(name, value)
    register(world, "100000000001")
    assert cap.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None) == {"batchItemFailures": []}
    assert max_capacity(world) == (0, 1)
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "GitHubIssueProcessor" and directive["Dimensions"] == [["Prefix"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {"UsableAccounts": "Count", "AvailableAccounts": "Count"}
    assert emf["Prefix"] == world.core.settings.prefix
    assert emf["UsableAccounts"] == [1.0] and emf["AvailableAccounts"] == [1.0]
