"""A first create that can fail and be retried.

- The event table's deletion protection comes on in an update after the create, never in the
  creating change set (``EventsTableProtection``), so a failed create can roll the table back.
- Before a create, leftovers of an earlier failed create (the table and the results bucket,
  from before ``RetainExceptOnCreate``, or kept by a destroy) are found. Empty ones tagged as
  ours can be imported with ``--adopt``; anything else stops the deploy with one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gip.adapters.aws import aws_errors, error_code
from gip.cli import stacks
from gip.errors import GipError

PROTECTION = "EventsTableProtection"
TAG = "gip:prefix"
CREATING = {None, "REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}


@dataclass(frozen=True)
class Orphan:
    """A resource the management stack would create, found already there."""

    logical_id: str
    resource_type: str
    identifier: dict[str, str]  # ResourceIdentifier for an IMPORT change set
    empty: bool
    ours: bool

    @property
    def name(self) -> str:
        return next(iter(self.identifier.values()))


def creating(status: str | None) -> bool:
    """Pure: True when the next change set for a stack in ``status`` is a create."""
    return status in CREATING


def protection(status: str | None) -> str:
    """Pure: the EventsTableProtection value: off while creating, on once the stack exists."""
    return "false" if creating(status) else "true"


def find_orphans(ddb: Any, s3: Any, *, prefix: str, account: str) -> list[Orphan]:
    """The event table and results bucket of ``prefix`` that exist outside any stack."""
    found = []
    table = _table(ddb, f"{prefix}-events", prefix)
    if table:
        found.append(table)
    bucket = _bucket(s3, f"{prefix}-results-{account}", prefix)
    if bucket:
        found.append(bucket)
    return found


def _table(ddb: Any, name: str, prefix: str) -> Orphan | None:
    with aws_errors(f"dynamodb:DescribeTable {name}"):
        try:
            arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        # Scan with Limit 1: ItemCount is refreshed only every ~6 hours.
        empty = ddb.scan(TableName=name, Limit=1, Select="COUNT")["Count"] == 0
        tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}
    return Orphan("EventsTable", "AWS::DynamoDB::Table", {"TableName": name}, empty, tags.get(TAG) == prefix)


def _bucket(s3: Any, name: str, prefix: str) -> Orphan | None:
    with aws_errors(f"s3:HeadBucket {name}"):
        try:
            s3.head_bucket(Bucket=name)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return None
            raise
        page = s3.list_object_versions(Bucket=name, MaxKeys=1)
        empty = not (page.get("Versions") or page.get("DeleteMarkers"))
        try:
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        except Exception as exc:
            if error_code(exc) != "NoSuchTagSet":
                raise
            tags = {}
    return Orphan("ResultsBucket", "AWS::S3::Bucket", {"BucketName": name}, empty, tags.get(TAG) == prefix)


def verdict(orphans: list[Orphan], *, prefix: str, adopt: bool) -> str | None:
    """Pure: None to go on (nothing there, or ``--adopt`` of empty leftovers of ours), else
    the one line that stops the deploy."""
    if not orphans:
        return None
    names = ", ".join(o.name for o in orphans)
    foreign = [o for o in orphans if not (o.empty and o.ours)]
    if foreign:
        why = "; ".join(f"{o.name} {'holds data' if not o.empty else f'is not tagged {TAG}={prefix}'}"
                        for o in foreign)
        return (f"{names} already exist outside the stack ({why}): CloudFormation cannot create them; "
                f"use another --prefix, or move the data and delete them")
    if adopt:
        return None
    return (f"{names} are left from an earlier failed create (empty, tagged {TAG}={prefix}): "
            f"rerun with --adopt to import them into the stack, or remove them "
            f"({removal_commands(orphans)})")


def removal_commands(orphans: list[Orphan]) -> str:
    """Pure: the AWS CLI commands that remove the (empty) orphans."""
    commands = []
    for o in orphans:
        if o.resource_type == "AWS::DynamoDB::Table":
            commands.append(f"aws dynamodb update-table --table-name {o.name} --no-deletion-protection-enabled; "
                            f"aws dynamodb delete-table --table-name {o.name}")
        else:
            commands.append(f"aws s3 rb s3://{o.name}")
    return "; ".join(commands)


def import_template(body: str, logical_ids: list[str]) -> str:
    """Pure: ``body`` with only the given resources and no Outputs, for an IMPORT change set
    (an import may not create anything). Works on the YAML text: no YAML library needed."""
    head, _, rest = body.partition("\nResources:\n")
    resources = rest.split("\nOutputs:\n", 1)[0]
    # A resource block runs from its two-space key to the next two-space key or comment.
    blocks = {m.group(1): block for block in re.split(r"\n(?=  [#A-Za-z])", "\n" + resources)
              if (m := re.match(r"  ([A-Za-z0-9]+):", block))}
    missing = [lid for lid in logical_ids if lid not in blocks]
    if missing:
        raise GipError(f"cannot import: the template does not declare {', '.join(missing)}")
    # Retain while importing: a failed import must never delete what it was adopting.
    kept = [blocks[lid].rstrip("\n").replace("DeletionPolicy: RetainExceptOnCreate", "DeletionPolicy: Retain")
            for lid in logical_ids]
    return head + "\nResources:\n" + "\n".join(kept) + "\n"


def import_orphans(
    cfn: Any, *, stack_name: str, body: str, parameters: dict[str, str], orphans: list[Orphan],
    tags: dict[str, str], reporter: stacks.Reporter, sleep: Callable[[float], None], poll: float,
) -> None:
    """Import the orphans into a new ``stack_name`` (an IMPORT change set); the normal
    update that follows adds everything else."""
    if stacks.stack_status(cfn, stack_name) in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
        stacks.delete(cfn, stack_name=stack_name, reporter=reporter, sleep=sleep, poll=poll)
    with aws_errors(f"cloudformation:CreateChangeSet {stack_name} (import)"):
        created = cfn.create_change_set(
            StackName=stack_name, ChangeSetName="gip-adopt", ChangeSetType="IMPORT",
            TemplateBody=import_template(body, [o.logical_id for o in orphans]),
            ResourcesToImport=[{"ResourceType": o.resource_type, "LogicalResourceId": o.logical_id,
                                "ResourceIdentifier": o.identifier} for o in orphans],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )
    described = stacks.wait_change_set(cfn, created["Id"], sleep=sleep, poll=poll)
    if described["Status"] == "FAILED":
        raise stacks.DeployFailed(stack_name, "import change set", described.get("StatusReason", ""))
    plan = stacks.Plan(stack_name=stack_name, kind="IMPORT", change_set_id=created["Id"],
                       stack_id=created.get("StackId", ""),
                       changes=tuple(stacks.parse_changes(described.get("Changes", []))))
    reporter.info(f"{stack_name}: importing {', '.join(o.name for o in orphans)}")
    stacks.apply(cfn, plan, reporter=reporter, sleep=sleep, poll=poll)


def prepare(cfn: Any, client: Callable[[str], Any], *, account: str, prefix: str, adopt: bool, dry_run: bool,
            body: str, params: dict[str, str], tags: dict[str, str], reporter: stacks.Reporter,
            sleep: Callable[[float], None], poll: float) -> str | None:
    """Before the management stack's create: stop on (or, with --adopt, import) leftovers of
    an earlier failed create. Returns the stack's status afterwards."""
    status = stacks.stack_status(cfn, prefix)
    if not creating(status):
        return status
    orphans = find_orphans(client("dynamodb"), client("s3"), prefix=prefix, account=account)
    stop = verdict(orphans, prefix=prefix, adopt=adopt)
    if stop:
        raise GipError(stop)
    if not orphans or dry_run:
        return status
    import_orphans(cfn, stack_name=prefix, body=body, parameters={**params, PROTECTION: "false"},
                   orphans=orphans, tags=tags, reporter=reporter, sleep=sleep, poll=poll)
    return stacks.stack_status(cfn, prefix)
