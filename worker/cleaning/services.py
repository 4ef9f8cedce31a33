"""Regional service kinds: load balancers, ECS, Lambda, RDS, DynamoDB, CloudWatch Logs.

A kind that is one list call and one delete call per id is a row of :data:`KINDS` built with
:func:`~worker.cleaning.kinds.listed` and :func:`~worker.cleaning.kinds.each`; the functions
here are the kinds that need more (waits, protection turned off, a describe per page)."""

from __future__ import annotations

from typing import Any

from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import Kind, each, listed, pages, wait


def _delete_albs(elbv2: Any, arns: list[str], job: CleanupJob) -> None:
    for arn in arns:
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
            {"Key": "deletion_protection.enabled", "Value": "false"}])
        elbv2.delete_load_balancer(LoadBalancerArn=arn)
    wait(elbv2, "load_balancers_deleted", job, LoadBalancerArns=arns)


def _ecs_services(ecs: Any, job: CleanupJob) -> list[str]:
    out = []
    for cluster in _ecs_clusters(ecs, job):
        arns = pages(ecs, "list_services", "serviceArns", cluster=cluster)
        for start in range(0, len(arns), 10):  # a deleted service stays listed a while as INACTIVE
            described = ecs.describe_services(cluster=cluster, services=arns[start:start + 10])["services"]
            out += [s["serviceArn"] for s in described if s.get("status") == "ACTIVE"]
    return out


def _delete_ecs_services(ecs: Any, arns: list[str], _: CleanupJob) -> None:
    for arn in arns:
        # arn:aws:ecs:<region>:<account>:service/<cluster>/<service>
        cluster = arn.split(":", 5)[5].split("/")[1]
        ecs.update_service(cluster=cluster, service=arn, desiredCount=0)
        ecs.delete_service(cluster=cluster, service=arn, force=True)


def _ecs_clusters(ecs: Any, _: CleanupJob) -> list[str]:
    arns = pages(ecs, "list_clusters", "clusterArns")
    out = []
    for start in range(0, len(arns), 100):  # a deleted cluster stays listed a while as INACTIVE
        described = ecs.describe_clusters(clusters=arns[start:start + 100])["clusters"]
        out += [c["clusterArn"] for c in described if c.get("status") == "ACTIVE"]
    return out


def _delete_ecs_clusters(ecs: Any, arns: list[str], _: CleanupJob) -> None:
    for cluster in arns:
        for task in pages(ecs, "list_tasks", "taskArns", cluster=cluster):  # standalone tasks bill too
            ecs.stop_task(cluster=cluster, task=task, reason="account cleanup")
        ecs.delete_cluster(cluster=cluster)


def _delete_db_instances(rds: Any, ids: list[str], job: CleanupJob) -> None:
    for ident in ids:
        rds.modify_db_instance(DBInstanceIdentifier=ident, DeletionProtection=False, ApplyImmediately=True)
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    for ident in ids:
        wait(rds, "db_instance_deleted", job, DBInstanceIdentifier=ident)


def _delete_db_clusters(rds: Any, ids: list[str], _: CleanupJob) -> None:
    for ident in ids:
        rds.modify_db_cluster(DBClusterIdentifier=ident, DeletionProtection=False, ApplyImmediately=True)
        rds.delete_db_cluster(DBClusterIdentifier=ident, SkipFinalSnapshot=True)


def _tables(ddb: Any, _: CleanupJob) -> list[str]:
    return pages(ddb, "list_tables", "TableNames")


def _delete_tables(ddb: Any, names: list[str], _: CleanupJob) -> None:
    for name in names:
        if ddb.describe_table(TableName=name)["Table"].get("DeletionProtectionEnabled"):
            ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
        ddb.delete_table(TableName=name)


KINDS = (
    Kind("ecs:service", "ecs", _ecs_services, _delete_ecs_services),
    Kind("ecs:cluster", "ecs", _ecs_clusters, _delete_ecs_clusters),
    Kind("elbv2:load-balancer", "elbv2",
         listed("describe_load_balancers", "LoadBalancers", "LoadBalancerArn"), _delete_albs),
    Kind("elb:load-balancer", "elb",
         listed("describe_load_balancers", "LoadBalancerDescriptions", "LoadBalancerName"),
         each("delete_load_balancer", "LoadBalancerName")),
    Kind("lambda:function", "lambda",
         listed("list_functions", "Functions", "FunctionName"), each("delete_function", "FunctionName")),
    Kind("rds:db", "rds", listed("describe_db_instances", "DBInstances", "DBInstanceIdentifier",
                                 keep=lambda d: d.get("DBInstanceStatus") != "deleting"), _delete_db_instances),
    Kind("rds:cluster", "rds", listed("describe_db_clusters", "DBClusters", "DBClusterIdentifier",
                                      keep=lambda c: c.get("Status") != "deleting"), _delete_db_clusters),
    Kind("dynamodb:table", "dynamodb", _tables, _delete_tables),
    Kind("logs:log-group", "logs",
         listed("describe_log_groups", "logGroups", "logGroupName"), each("delete_log_group", "logGroupName")),
)
