"""``bootstrap.py destroy``: remove the stacks; keep the audit log and results by default.

The event table and the results bucket have ``DeletionPolicy: RetainExceptOnCreate``, so deleting the
stacks leaves them (and their data) in place. ``--delete-data`` removes them too, with the
artifacts bucket: deletion protection is turned off first and buckets are emptied
(every object version). The member StackSet's instances are deleted, not retained.

AWS refuses to delete a custom bus while rules remain on it, so user subscriptions (rules
tagged ``gip:owner=user``, see ``gip.cli.subscribe``) block a destroy: without ``--yes`` it
refuses with the ``unsubscribe`` commands to run; with ``--yes`` it removes them first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from gip.adapters import aws
from gip.adapters.aws import aws_errors, error_code
from gip.cli import packaging, stacks, stackset, subscribe
from gip.cli.console_reporter import ConsoleReporter
from gip.cli.deploy import DEFAULT_PREFIX, stack_names
from gip.errors import AwsError, GipError, NotFound
from gip.local.gaps import Resolver, local_resolver


@dataclass
class DestroyOptions:
    prefix: str
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    yes: bool = False
    delete_data: bool = False
    local: bool = False
    sleep: Callable[[float], None] = time.sleep
    poll: float = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--delete-data", action="store_true",
                        help="also delete the event table (the audit log), the results and artifacts buckets")


def run(args: argparse.Namespace) -> int:
    options = DestroyOptions(prefix=args.prefix, region=args.region, profile=args.profile,
                             endpoint_url=args.endpoint_url, yes=args.yes,
                             delete_data=args.delete_data,
                             local=aws.is_local_endpoint(aws.endpoint_url(args)))
    destroy(options, ConsoleReporter(yes=options.yes))
    return 0


def destroy(options: DestroyOptions, reporter: stacks.Reporter) -> None:
    """Delete the StackSet and the stacks (worker first); with delete_data, the data too."""
    sess = aws.session(options)
    region = sess.region_name

    def client(name: str) -> Any:
        return aws.client(options, name, sess=sess)

    account = aws.check_credentials(options, sess=sess)["Account"]
    names = list(stack_names(options.prefix))
    events_table = f"{options.prefix}-events"
    results = f"{options.prefix}-results-{account}"
    artifacts = packaging.artifacts_bucket_name(options.prefix, account, region)
    what = ", ".join(names) + (f", and the DATA: {events_table}, {results}, {artifacts}"
                               if options.delete_data else "")
    user_rules = user_subscriptions(options)
    if user_rules and not options.yes:
        raise GipError(subscriptions_block(options.prefix, user_rules))
    if not reporter.confirm(f"Delete {what} in {account}/{region}?"):
        raise GipError("aborted: destroy not confirmed (use --yes)")
    for rule in user_rules:
        removed = subscribe.remove_subscription(options, rule)
        reporter.info(f"removed subscription {rule} ({removed} target(s))")
    cfn = client("cloudformation")
    try:
        stackset.delete(cfn, name=f"{options.prefix}-member", region=region, reporter=reporter,
                        sleep=options.sleep, poll=options.poll,
                        fallback_ous=lambda: [stackset.org_root(client("organizations"))])
    except (GipError, NotImplementedError) as exc:
        if not options.local:
            raise
        reporter.notice(f"local: member StackSet not deleted ({exc})")
    for name in reversed(names):
        if stacks.stack_status(cfn, name) is None:
            reporter.info(f"{name}: not deployed")
            continue
        reporter.info(f"deleting {name}")
        leftovers = _local_leftovers(cfn, client, name, region, account) if options.local else None
        stacks.delete(cfn, stack_name=name, reporter=reporter, sleep=options.sleep, poll=options.poll)
        if leftovers is not None:
            delete_leftovers(leftovers, client, reporter.notice)
    if not options.delete_data:
        reporter.info(f"kept {events_table} (the audit log) and s3://{results}; "
                      "destroy --delete-data removes them")
        return
    delete_table(client("dynamodb"), events_table, reporter, sleep=options.sleep, poll=options.poll)
    for bucket in (results, artifacts):
        delete_bucket(client("s3"), bucket, reporter)


def user_subscriptions(options: DestroyOptions) -> list[str]:
    """Rule names of the user subscriptions on ``<prefix>-bus`` ([] when there is no bus)."""
    try:
        rows = subscribe.list_rules(options)
    except NotFound:
        return []
    return [row["rule"] for row in rows if row["owner"] == subscribe.USER]


def subscriptions_block(prefix: str, rules: list[str]) -> str:
    """Pure: the one-line refusal naming the ``unsubscribe`` command for each rule."""
    flag = "" if prefix == DEFAULT_PREFIX else f" --prefix {prefix}"
    commands = "; ".join(f"python bootstrap.py unsubscribe {rule.removeprefix(f'{prefix}-sub-')}{flag}"
                         for rule in rules)
    return (f"{len(rules)} subscription(s) keep {prefix}-bus from being deleted: run {commands} "
            "(or destroy --yes removes them)")


def _local_leftovers(cfn: Any, client: Callable[[str], Any], name: str, region: str, account: str) -> Any:
    """Local mode: a resolver over the stack's resources, taken before DeleteStack."""
    with aws_errors(f"cloudformation:DescribeStacks {name}"):
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    template_file = stack_names(params.get("Prefix", name))[name]
    resolver, _ = local_resolver(client, stack_name=name, template_file=template_file,
                                 parameters=params, region=region, account=account)
    return plan_leftovers(resolver)


def delete_table(ddb: Any, table: str, reporter: stacks.Reporter, *,
                 sleep: Callable[[float], None] = time.sleep, poll: float = 3.0, attempts: int = 100) -> None:
    """Turn deletion protection off, wait until the table is ACTIVE again, delete it
    (absent is fine). DeleteTable on an UPDATING table fails with ResourceInUseException."""
    try:
        ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
        wait_active(ddb, table, sleep=sleep, poll=poll, attempts=attempts)
        ddb.delete_table(TableName=table)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return
        raise AwsError(aws.describe(exc, action=f"dynamodb:DeleteTable {table}")) from exc
    reporter.info(f"deleted table {table}")


def wait_active(ddb: Any, table: str, *, sleep: Callable[[float], None], poll: float, attempts: int) -> None:
    """Poll DescribeTable until the table is ACTIVE; AwsError after ``attempts`` polls."""
    for _ in range(attempts):
        if ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        sleep(poll)
    raise AwsError(f"table {table} did not become ACTIVE after {attempts} checks; run destroy again later")


def delete_bucket(s3: Any, bucket: str, reporter: stacks.Reporter) -> None:
    """Delete every object version, then the bucket (absent is fine)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return
        with aws_errors(f"s3:HeadBucket {bucket}"):
            raise
    with aws_errors(f"s3:DeleteBucket {bucket}"):
        aws.delete_bucket(s3, bucket)
    reporter.info(f"deleted bucket {bucket}")


# --------------------------------------------------------------------------- leftovers
# Local mode only. moto's DeleteStack deletes nothing for a stack that was created through a change set.
# Local destroy deletes what the stack held itself (Retain resources stay, as in AWS).

def _delete_rule(clients: Callable[[str], Any], physical: str, props: dict[str, Any]) -> None:
    events, bus = clients("events"), props.get("EventBusName", "default")
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=physical, EventBusName=bus)["Targets"]]
    if ids:
        events.remove_targets(Rule=physical, EventBusName=bus, Ids=ids)
    events.delete_rule(Name=physical, EventBusName=bus)


def _delete_role(clients: Callable[[str], Any], physical: str, props: dict[str, Any]) -> None:
    iam = clients("iam")
    for p in iam.list_attached_role_policies(RoleName=physical)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=physical, PolicyArn=p["PolicyArn"])
    for name in iam.list_role_policies(RoleName=physical)["PolicyNames"]:
        iam.delete_role_policy(RoleName=physical, PolicyName=name)
    iam.delete_role(RoleName=physical)


def _delete_service(clients: Callable[[str], Any], physical: str, props: dict[str, Any]) -> None:
    clients("ecs").delete_service(cluster=props["Cluster"], service=physical, force=True)


DELETERS: dict[str, tuple[int, Callable[[Callable[[str], Any], str, dict[str, Any]], None]]] = {
    "AWS::Lambda::EventSourceMapping": (0, lambda c, p, _: c("lambda").delete_event_source_mapping(UUID=p)),
    "AWS::Events::Rule": (0, _delete_rule),
    "AWS::ECS::Service": (0, _delete_service),
    "AWS::Lambda::Function": (1, lambda c, p, _: c("lambda").delete_function(FunctionName=p)),
    "AWS::SQS::Queue": (1, lambda c, p, _: c("sqs").delete_queue(QueueUrl=p)),
    "AWS::DynamoDB::Table": (1, lambda c, p, _: c("dynamodb").delete_table(TableName=p)),
    "AWS::SNS::Topic": (1, lambda c, p, _: c("sns").delete_topic(TopicArn=p)),
    "AWS::Events::Archive": (1, lambda c, _p, props: c("events").delete_archive(ArchiveName=props["ArchiveName"])),
    "AWS::ApiGateway::RestApi": (1, lambda c, p, _: c("apigateway").delete_rest_api(restApiId=p)),
    "AWS::ECS::TaskDefinition": (1, lambda c, p, _: c("ecs").deregister_task_definition(taskDefinition=p)),
    "AWS::Logs::LogGroup": (1, lambda c, p, _: c("logs").delete_log_group(logGroupName=p)),
    "AWS::SecretsManager::Secret": (1, lambda c, _p, props: c("secretsmanager").delete_secret(
        SecretId=props["Name"], ForceDeleteWithoutRecovery=True)),
    "AWS::Events::EventBus": (2, lambda c, _p, props: c("events").delete_event_bus(Name=props["Name"])),
    "AWS::ECS::Cluster": (2, lambda c, p, _: c("ecs").delete_cluster(cluster=p)),
    "AWS::EC2::SecurityGroup": (2, lambda c, p, _: c("ec2").delete_security_group(GroupId=p)),
    "AWS::IAM::Role": (3, _delete_role),
}


RETAINED = {"Retain", "RetainExceptOnCreate"}  # kept by a delete of a created stack
NEEDS_PROPS = {"AWS::Events::Rule", "AWS::Events::Archive", "AWS::SecretsManager::Secret",
               "AWS::Events::EventBus", "AWS::ECS::Service"}


def plan_leftovers(resolver: Resolver) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Before DeleteStack: (logical id, type, physical id, properties) of what to delete
    afterwards, in order. Properties are resolved now, while what they refer to exists."""
    todo = [lid for lid, spec in resolver.resources.items()
            if spec.get("DeletionPolicy") not in RETAINED and spec["Type"] in DELETERS
            and resolver.active(lid)]
    todo.sort(key=lambda lid: DELETERS[resolver.resources[lid]["Type"]][0])
    planned = []
    for lid in todo:
        spec = resolver.resources[lid]
        props: dict[str, Any] = {}
        if spec["Type"] in NEEDS_PROPS:
            try:
                props = resolver.value(spec.get("Properties", {}))
            except Exception:  # refers to something already gone
                continue
        planned.append((lid, spec["Type"], resolver.physical.get(lid, ""), props))
    return planned


def delete_leftovers(
    planned: list[tuple[str, str, str, dict[str, Any]]], clients: Callable[[str], Any],
    notice: Callable[[str], None],
) -> int:
    """After DeleteStack: delete what is still there (absent is fine). Returns a count."""
    deleted = 0
    for _lid, rtype, physical, props in planned:
        try:
            DELETERS[rtype][1](clients, physical, props)
            deleted += 1
        except Exception:  # already gone (moto deleted it), or never created
            continue
    if deleted:
        notice(f"local: moto's DeleteStack left {deleted} resource(s); deleted them through the API")
    return deleted
