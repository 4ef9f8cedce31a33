"""PURE decisions of the cleaner: what listed resources to delete, and what counts as residue."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from worker.cleaning.job import Protection

GONE_STACK = "DELETE_COMPLETE"
# Services the built-in kinds list one by one (authoritative: the tagging index can lag behind
# a deletion), and services with no standing cost. The tagging API reports everything else.
LISTED_SERVICES = frozenset({"ec2", "elasticloadbalancing", "ecs", "lambda", "rds", "dynamodb", "logs",
                             "s3", "cloudformation"})
NOT_BILLED = frozenset({"iam", "sns", "sqs", "events", "ssm", "states", "apigateway", "cloudwatch",
                        "resource-groups", "organizations", "sts"})


def plan_stacks(summaries: Iterable[Mapping[str, Any]], protection: Protection) -> list[str]:
    """Root stacks to delete (nested ones go with their parent); never our StackSet's."""
    return [s["StackName"] for s in summaries
            if not protection.stack(s["StackName"]) and not s.get("ParentId")
            and s.get("StackStatus") != GONE_STACK]


def tagged_residue(arns: Iterable[str], protection: Protection) -> list[str]:
    """Billable ARNs from the Resource Groups Tagging API that no built-in kind lists."""
    out = []
    for arn in arns:
        parts = arn.split(":", 5)
        if len(parts) < 6:
            continue
        service, resource = parts[2], parts[5]
        if service in LISTED_SERVICES or service in NOT_BILLED:
            continue
        if protection.stack_prefix in resource:
            continue
        out.append(arn)
    return sorted(out)
