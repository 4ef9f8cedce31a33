"""The built-in cleaner: delete what a run created in the member account. Pluggable.

Interface::

    def clean(job: CleanupJob) -> list[str]   # what was removed; raise on failure

The built-in :func:`clean` acts with the member role (``job.client(service)``) and removes,
in ``job.region``:

- CloudFormation stacks (root stacks; nested ones go with their parent) and S3 buckets that
  carry the run tag ``gip:lease=<lease id>``, or were created inside the lease window
  ``[since - skew, until]``; with no known window (a reinstated account), everything not
  protected;
- never the processing role's own StackSet stack (``StackSet-*``), nor anything that stack
  created (``aws:cloudformation:stack-name`` tag), nor anything tagged ``gip:keep``.

Deciding what to delete is pure (:func:`plan_stacks`, :func:`plan_buckets`); deleting is the
thin shell around it. ``CLEANER=module:function`` swaps in another cleaner (an aws-nuke wrapper).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.core.errors import AwsError
from worker.plugins import load_plugin

RUN_TAG = "gip:lease"
KEEP_TAG = "gip:keep"
PROTECTED_STACK_PREFIX = "StackSet-"
CFN_STACK_TAG = "aws:cloudformation:stack-name"
SKEW = timedelta(seconds=60)
_GONE = {"DELETE_COMPLETE"}
_LIVE_FILTER = [
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED",
    "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE",
    "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
]  # fmt: skip


@dataclass(frozen=True)
class CleanupJob:
    """What to clean: the account, the lease, its window, and member-role clients."""

    account_id: str
    lease_id: str | None
    region: str
    since: datetime | None
    until: datetime
    client: Callable[[str], Any]  # service name → boto3 client acting with the member role
    sleep: Callable[[float], None] = field(default=time.sleep)
    wait_s: float = 600.0


Cleaner = Callable[[CleanupJob], list[str]]


def _tags(pairs: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {p["Key"]: p["Value"] for p in pairs or ()}


def _in_window(created: datetime | None, since: datetime | None, until: datetime) -> bool:
    if since is None:
        return True
    if created is None:
        return False
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    return since - SKEW <= created <= until + SKEW


def plan_stacks(stacks: Iterable[Mapping[str, Any]], *, lease_id: str | None,
                since: datetime | None, until: datetime) -> list[str]:
    """Names of root stacks to delete (PURE)."""
    out = []
    for stack in stacks:
        name, tags = stack["StackName"], _tags(stack.get("Tags"))
        if name.startswith(PROTECTED_STACK_PREFIX) or KEEP_TAG in tags or stack.get("ParentId"):
            continue
        if stack.get("StackStatus") in _GONE:
            continue
        if (lease_id and tags.get(RUN_TAG) == lease_id) or _in_window(stack.get("CreationTime"), since, until):
            out.append(name)
    return out


def plan_buckets(buckets: Iterable[Mapping[str, Any]], tags_by_bucket: Mapping[str, dict[str, str]], *,
                 lease_id: str | None, since: datetime | None, until: datetime) -> list[str]:
    """Names of buckets to delete (PURE)."""
    out = []
    for bucket in buckets:
        name, tags = bucket["Name"], tags_by_bucket.get(bucket["Name"], {})
        if KEEP_TAG in tags or tags.get(CFN_STACK_TAG, "").startswith(PROTECTED_STACK_PREFIX):
            continue
        if (lease_id and tags.get(RUN_TAG) == lease_id) or _in_window(bucket.get("CreationDate"), since, until):
            out.append(name)
    return out


def clean(job: CleanupJob) -> list[str]:
    """The built-in cleaner. Returns ``["cloudformation:stack/<name>", "s3:bucket/<name>", ...]``."""
    try:
        return _delete_stacks(job) + _delete_buckets(job)
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cleanup of account {job.account_id} failed: {exc}") from exc


def _delete_stacks(job: CleanupJob) -> list[str]:
    cfn = job.client("cloudformation")
    summaries = [s for page in cfn.get_paginator("list_stacks").paginate(StackStatusFilter=_LIVE_FILTER)
                 for s in page["StackSummaries"]]
    stacks = []
    for summary in summaries:
        if summary["StackName"].startswith(PROTECTED_STACK_PREFIX):
            continue  # never even describe the processing role's own stack
        described = cfn.describe_stacks(StackName=summary["StackId"])["Stacks"]
        stacks.extend(described)
    names = plan_stacks(stacks, lease_id=job.lease_id, since=job.since, until=job.until)
    ids = {s["StackName"]: s["StackId"] for s in stacks}
    for name in names:
        cfn.delete_stack(StackName=ids[name])
    deadline = time.monotonic() + job.wait_s
    pending = list(names)
    while pending:
        still = []
        for name in pending:
            status = cfn.describe_stacks(StackName=ids[name])["Stacks"][0]["StackStatus"]
            if status == "DELETE_FAILED":
                raise AwsError(f"stack {name} in account {job.account_id} is DELETE_FAILED")
            if status not in _GONE:
                still.append(name)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise AwsError(f"stacks {pending} in account {job.account_id} not deleted in {job.wait_s:g}s")
            job.sleep(5)
    return [f"cloudformation:stack/{name}" for name in names]


def _delete_buckets(job: CleanupJob) -> list[str]:
    s3 = job.client("s3")
    buckets = s3.list_buckets().get("Buckets", [])
    tags: dict[str, dict[str, str]] = {}
    for bucket in buckets:
        try:
            tags[bucket["Name"]] = _tags(s3.get_bucket_tagging(Bucket=bucket["Name"]).get("TagSet"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchTagSet", "NoSuchTagSetError"):
                raise
    names = plan_buckets(buckets, tags, lease_id=job.lease_id, since=job.since, until=job.until)
    for name in names:
        try:
            _empty_bucket(s3, name)
            s3.delete_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise  # gone already: another cleaner of the same lease got there first
    return [f"s3:bucket/{name}" for name in names]


def _empty_bucket(s3: Any, name: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=name, Delete={"Objects": keys[start:start + 1000], "Quiet": True})


def load_cleaner(spec: str | None) -> Cleaner:
    """``None``/empty → the built-in :func:`clean`; ``module:function`` → that callable."""
    if not spec:
        return clean
    return load_plugin("CLEANER", spec)  # type: ignore[no-any-return]
