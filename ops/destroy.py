"""``bootstrap.py destroy``: remove the stacks; keep the audit log and results by default.

The event table and the results bucket have ``DeletionPolicy: Retain``, so deleting the
stacks leaves them (and their data) in place. ``--delete-data`` removes them too, with the
artifacts bucket: deletion protection is turned off first and buckets are emptied
(every object version). The member StackSet's instances are deleted, not retained.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from handlers.core.errors import AwsError, GipError
from ops import aws, packaging, stacks, stackset
from ops.aws import aws_errors, error_code
from ops.deploy import ConsoleReporter, local_resolver, stack_names


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
    if not reporter.confirm(f"Delete {what} in {account}/{region}?"):
        raise GipError("aborted: destroy not confirmed (use --yes)")
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
            from ops.local_gaps import delete_leftovers

            delete_leftovers(leftovers, client, reporter.notice)
    if not options.delete_data:
        reporter.info(f"kept {events_table} (the audit log) and s3://{results}; "
                      "destroy --delete-data removes them")
        return
    delete_table(client("dynamodb"), events_table, reporter)
    for bucket in (results, artifacts):
        delete_bucket(client("s3"), bucket, reporter)


def _local_leftovers(cfn: Any, client: Callable[[str], Any], name: str, region: str, account: str) -> Any:
    """Local mode: a resolver over the stack's resources, taken before DeleteStack."""
    with aws_errors(f"cloudformation:DescribeStacks {name}"):
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    template_file = stack_names(params.get("Prefix", name))[name]
    resolver, _ = local_resolver(client, stack_name=name, template_file=template_file,
                                 parameters=params, region=region, account=account)
    from ops.local_gaps import plan_leftovers

    return plan_leftovers(resolver)


def delete_table(ddb: Any, table: str, reporter: stacks.Reporter) -> None:
    """Turn deletion protection off and delete the table (absent is fine)."""
    try:
        ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
        ddb.delete_table(TableName=table)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return
        raise AwsError(aws.describe(exc, action=f"dynamodb:DeleteTable {table}")) from exc
    reporter.info(f"deleted table {table}")


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
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i:i + 1000], "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    reporter.info(f"deleted bucket {bucket}")
