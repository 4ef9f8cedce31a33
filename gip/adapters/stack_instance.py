"""Does CloudFormation confirm a registration request? The registrar's check before it acts.

A custom-resource request names its stack (``StackId``), but the request body is only as
trustworthy as whoever published it. So before the pool changes, the registrar asks the
StackSet itself (in the management account, ``CallAs=SELF``: our deploy creates the
service-managed StackSet there, not in a delegated administrator):

- Create: a stack instance of our StackSet exists for that account and region, and its
  stack is the one named in the request;
- Delete: the instance is gone, or it is the request's stack and its last StackSet
  operation is a DELETE still in progress.

Anything else is refused and changes nothing. ``ListStackInstances`` (not
``DescribeStackInstance``) is used because it answers "none" with an empty list.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ListStackInstances.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gip.errors import AwsError

REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
STACK_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:cloudformation:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):stack/(?P<name>[A-Za-z][A-Za-z0-9:-]{0,160})/[\w-]+$"
)  # ':' only because moto names an instance's stack "StackSet-<set>:<uuid>"
IN_PROGRESS = frozenset({"RUNNING", "QUEUED", "STOPPING"})


@dataclass(frozen=True)
class Instance:
    """The fields of a stack instance summary the check reads."""

    account: str
    region: str
    stack_id: str = ""
    status: str = ""
    detailed_status: str = ""
    last_operation_id: str = ""


@dataclass(frozen=True)
class Operation:
    action: str  # CREATE | UPDATE | DELETE | DETECT_DRIFT
    status: str  # RUNNING | SUCCEEDED | FAILED | STOPPING | STOPPED | QUEUED


@dataclass(frozen=True)
class Verdict:
    """``confirmed`` or not, and why (one line, for the log and the CloudFormation Reason)."""

    confirmed: bool
    reason: str


def stack_name(stack_id: str) -> str:
    """The stack name in a stack ARN ('' if it is not one)."""
    match = STACK_ARN_RE.match(stack_id or "")
    return match["name"] if match else ""


def same_stack(instance_stack_id: str, request_stack_id: str) -> bool:
    """Account, region and stack name agree. The name of a StackSet stack carries the
    instance's own uuid (``StackSet-<set>-<uuid>``) and is unique per account and region."""
    a, b = STACK_ARN_RE.match(instance_stack_id or ""), STACK_ARN_RE.match(request_stack_id or "")
    return bool(a and b) and (a["account"], a["region"], a["name"]) == (b["account"], b["region"], b["name"])  # type: ignore[index]


def decide(request_type: str, *, stack_id: str, instance: Instance | None,
           operation: Operation | None) -> Verdict:
    """Pure: does the StackSet's view confirm this request? ``operation`` is the
    instance's last StackSet operation (None when unknown)."""
    if request_type == "Delete":
        if instance is None:
            return Verdict(True, "no stack instance left for the account")
        if instance.stack_id and not same_stack(instance.stack_id, stack_id):
            return Verdict(False, "the account's stack instance is another stack")
        if operation is not None and operation.action == "DELETE" and operation.status in IN_PROGRESS:
            return Verdict(True, "the stack instance is being deleted")
        state = operation.action + " " + operation.status if operation else instance.detailed_status or instance.status
        return Verdict(False, f"the stack instance is not being deleted (last operation: {state or 'unknown'})")
    if instance is None:
        return Verdict(False, "no stack instance of the StackSet for the account")
    if instance.stack_id and not same_stack(instance.stack_id, stack_id):
        return Verdict(False, "the account's stack instance is another stack")
    return Verdict(True, "the account has a stack instance of the StackSet")


class StackInstances:
    """The StackSet's view of one account (boto3 CloudFormation client injected)."""

    def __init__(self, cfn: Any, *, stack_set: str, call_as: str = "SELF") -> None:
        self.cfn = cfn
        self.stack_set = stack_set
        self.call_as = call_as

    def find(self, account: str, region: str) -> Instance | None:
        try:
            pages = self.cfn.get_paginator("list_stack_instances").paginate(
                StackSetName=self.stack_set, StackInstanceAccount=account,
                StackInstanceRegion=region, CallAs=self.call_as)
            summaries = [s for page in pages for s in page.get("Summaries", [])]
        except Exception as exc:
            raise AwsError(f"cloudformation:ListStackInstances {self.stack_set}: {_code(exc)}") from exc
        for s in summaries:  # the filters are re-applied: not every endpoint honours them
            if s.get("Account") == account and s.get("Region") == region:
                return Instance(account=account, region=region, stack_id=str(s.get("StackId") or ""),
                                status=str(s.get("Status") or ""),
                                detailed_status=str((s.get("StackInstanceStatus") or {}).get("DetailedStatus") or ""),
                                last_operation_id=str(s.get("LastOperationId") or ""))
        return None

    def operation(self, operation_id: str) -> Operation | None:
        if not operation_id:
            return None
        try:
            op = self.cfn.describe_stack_set_operation(
                StackSetName=self.stack_set, OperationId=operation_id, CallAs=self.call_as)["StackSetOperation"]
        except Exception as exc:
            raise AwsError(f"cloudformation:DescribeStackSetOperation {self.stack_set}: {_code(exc)}") from exc
        return Operation(action=str(op.get("Action") or ""), status=str(op.get("Status") or ""))

    def check(self, request_type: str, *, account: str, stack_id: str) -> Verdict:
        """Read the instance (and, for Delete, its last operation) and decide."""
        match = STACK_ARN_RE.match(stack_id or "")
        if not match or match["account"] != account or not REGION_RE.match(match["region"]):
            return Verdict(False, "StackId is not a stack ARN of the account")
        instance = self.find(account, match["region"])
        operation = self.operation(instance.last_operation_id) if instance and request_type == "Delete" else None
        return decide(request_type, stack_id=stack_id, instance=instance, operation=operation)


def _code(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return str(code or type(exc).__name__)
