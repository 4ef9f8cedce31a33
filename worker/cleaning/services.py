"""Regional service kinds: load balancers, ECS, Lambda, RDS, DynamoDB, CloudWatch Logs."""

from __future__ import annotations

from typing import Any

from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import Kind, pages, wait


def _albs(elbv2: Any, _: CleanupJob) -> list[str]:
    return [lb["LoadBalancerArn"] for lb in pages(elbv2, "describe_load_balancers", "LoadBalancers")]


def _delete_albs(elbv2: Any, arns: list[str], job: CleanupJob) -> None:
    for arn in arns:
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
            {"Key": "deletion_protection.enabled", "Value": "false"}])
        elbv2.delete_load_balancer(LoadBalancerArn=arn)
    wait(elbv2, "load_balancers_deleted", job, LoadBalancerArns=arns)


def _classic_elbs(elb: Any, _: CleanupJob) -> list[str]:
    return [lb["LoadBalancerName"] for lb in pages(elb, "describe_load_balancers", "LoadBalancerDescriptions")]


def _delete_classic(elb: Any, names: list[str], _: CleanupJob) -> None:
    for name in names:
        elb.delete_load_balancer(LoadBalancerName=name)


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


def _functions(lam: Any, _: CleanupJob) -> list[str]:
    return [f["FunctionName"] for f in pages(lam, "list_functions", "Functions")]


def _delete_functions(lam: Any, names: list[str], _: CleanupJob) -> None:
    for name in names:
        lam.delete_function(FunctionName=name)


def _db_instances(rds: Any, _: CleanupJob) -> list[str]:
    return [d["DBInstanceIdentifier"] for d in pages(rds, "describe_db_instances", "DBInstances")
            if d.get("DBInstanceStatus") != "deleting"]


def _delete_db_instances(rds: Any, ids: list[str], job: CleanupJob) -> None:
    for ident in ids:
        rds.modify_db_instance(DBInstanceIdentifier=ident, DeletionProtection=False, ApplyImmediately=True)
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    for ident in ids:
        wait(rds, "db_instance_deleted", job, DBInstanceIdentifier=ident)


def _db_clusters(rds: Any, _: CleanupJob) -> list[str]:
    return [c["DBClusterIdentifier"] for c in pages(rds, "describe_db_clusters", "DBClusters")
            if c.get("Status") != "deleting"]


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


def _log_groups(logs: Any, _: CleanupJob) -> list[str]:
    return [g["logGroupName"] for g in pages(logs, "describe_log_groups", "logGroups")]


def _delete_log_groups(logs: Any, names: list[str], _: CleanupJob) -> None:
    for name in names:
        logs.delete_log_group(logGroupName=name)


KINDS = (
    Kind("ecs:service", "ecs", _ecs_services, _delete_ecs_services),
    Kind("ecs:cluster", "ecs", _ecs_clusters, _delete_ecs_clusters),
    Kind("elbv2:load-balancer", "elbv2", _albs, _delete_albs),
    Kind("elb:load-balancer", "elb", _classic_elbs, _delete_classic),
    Kind("lambda:function", "lambda", _functions, _delete_functions),
    Kind("rds:db", "rds", _db_instances, _delete_db_instances),
    Kind("rds:cluster", "rds", _db_clusters, _delete_db_clusters),
    Kind("dynamodb:table", "dynamodb", _tables, _delete_tables),
    Kind("logs:log-group", "logs", _log_groups, _delete_log_groups),
)
