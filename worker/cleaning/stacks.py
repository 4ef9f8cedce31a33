"""CloudFormation stacks (regional) and S3 buckets (global)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from gip.adapters.aws import delete_bucket
from gip.errors import AwsError
from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import Kind, pages
from worker.cleaning.plan import GONE_STACK, plan_stacks

_LIVE = [
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED",
    "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE",
    "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
]  # fmt: skip


def _stacks(cfn: Any, job: CleanupJob) -> list[str]:
    return plan_stacks(pages(cfn, "list_stacks", "StackSummaries", StackStatusFilter=_LIVE), job.protection)


def _delete_stacks(cfn: Any, names: list[str], job: CleanupJob) -> None:
    for name in names:
        if cfn.describe_stacks(StackName=name)["Stacks"][0].get("EnableTerminationProtection"):
            cfn.update_termination_protection(StackName=name, EnableTerminationProtection=False)
        cfn.delete_stack(StackName=name)
    deadline = time.monotonic() + job.wait_s
    pending = list(names)
    while pending:
        still = []
        for name in pending:
            try:
                status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
            except ClientError:
                continue  # "does not exist": gone
            if status == "DELETE_FAILED":
                raise AwsError(f"stack {name} is DELETE_FAILED")
            if status != GONE_STACK:
                still.append(name)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise AwsError(f"{len(pending)} stack(s) not deleted in {job.wait_s:g}s")
            job.sleep(5)


def _buckets(s3: Any, _: CleanupJob) -> list[str]:
    return [b["Name"] for b in s3.list_buckets().get("Buckets", [])]


def _delete_buckets(s3: Any, names: list[str], _: CleanupJob) -> None:
    for name in names:
        try:
            delete_bucket(s3, name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise


STACKS = Kind("cloudformation:stack", "cloudformation", _stacks, _delete_stacks)
BUCKETS = Kind("s3:bucket", "s3", _buckets, _delete_buckets, regional=False)
