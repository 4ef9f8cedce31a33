"""CloudFormation through change sets: plan (describe, no mutation), apply (execute + stream).

The pipeline, as in Chalice's deployer:

1. :func:`plan` creates a change set and waits until it is described. "No changes" is a
   normal, successful plan (``Plan.no_changes``), and its change set is deleted at once.
2. The caller shows :func:`render_changes`, asks before replacements/removals, or
   :func:`discard` s the plan for ``--dry-run`` (a CREATE plan also removes the empty
   REVIEW_IN_PROGRESS stack, so a dry run leaves nothing behind).
3. :func:`apply` executes it and streams stack events through the reporter with a running
   count. On failure it raises :class:`DeployFailed` naming the first failing resource.

boto3 clients are injected, and every wait takes a ``sleep`` callable so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gip.adapters.aws import aws_errors, error_code
from gip.errors import AwsError

Sleep = Callable[[float], None]

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
DONE_BAD = {
    "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_COMPLETE",
}
RESOURCE_DONE = ("_COMPLETE", "_SKIPPED")


class DeployFailed(AwsError):
    """A stack operation failed; carries the first failing resource and its reason."""

    def __init__(self, stack: str, resource: str = "", reason: str = "") -> None:
        self.stack = stack
        self.resource = resource
        self.reason = reason
        where = f": {resource}" if resource else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"stack {stack} failed{where}{why}")


class Reporter(Protocol):
    """Where progress goes. ``gip.cli.console_reporter.ConsoleReporter`` prints; tests record."""

    def info(self, message: str) -> None: ...
    def notice(self, message: str) -> None: ...
    def event(self, count: int, total: int, event: dict[str, Any]) -> None: ...
    def confirm(self, question: str) -> bool: ...


@dataclass(frozen=True)
class Template:
    """A template given inline (``body``) or as an S3 URL (over 51,200 bytes)."""

    body: str | None = None
    url: str | None = None
    too_big_for: str = ""  # over the inline limit and this artifacts bucket does not exist yet

    def api_args(self) -> dict[str, str]:
        return {"TemplateURL": self.url} if self.url else {"TemplateBody": self.body or ""}


@dataclass(frozen=True)
class Change:
    """One row of a change set: what happens to which resource."""

    logical_id: str
    resource_type: str
    action: str  # Add | Modify | Remove | Import | Dynamic
    replacement: str = ""  # True | False | Conditional | "" (not applicable)

    @property
    def risky(self) -> bool:
        """Replacements and removals lose a resource (and maybe its data): ask first."""
        return self.action == "Remove" or self.replacement in ("True", "Conditional")


@dataclass(frozen=True)
class Plan:
    """A described change set (or the decision that nothing changes)."""

    stack_name: str
    kind: str  # CREATE | UPDATE
    change_set_id: str = ""
    stack_id: str = ""
    changes: tuple[Change, ...] = field(default_factory=tuple)
    no_changes: bool = False

    @property
    def risky(self) -> list[Change]:
        return [c for c in self.changes if c.risky]


def parse_changes(raw: Iterable[dict[str, Any]]) -> list[Change]:
    """Pure: DescribeChangeSet ``Changes`` -> :class:`Change` rows."""
    out = []
    for item in raw:
        rc = item.get("ResourceChange", {})
        out.append(Change(
            logical_id=rc.get("LogicalResourceId", ""),
            resource_type=rc.get("ResourceType", ""),
            action=rc.get("Action", ""),
            replacement=str(rc.get("Replacement", "") or ""),
        ))
    return out


def render_changes(plan: Plan) -> list[str]:
    """Pure: the change set as aligned lines (resource, action, replacement)."""
    if plan.no_changes:
        return [f"{plan.stack_name}: no changes"]
    if not plan.changes:
        return [f"{plan.stack_name}: template or parameters changed (no resource changes listed)"]
    width = max(len(c.logical_id) for c in plan.changes)
    tw = max(len(c.resource_type) for c in plan.changes)
    lines = [f"{plan.stack_name}: {len(plan.changes)} change(s) ({plan.kind})"]
    for c in plan.changes:
        repl = f"  replacement={c.replacement}" if c.replacement else ""
        lines.append(f"  {c.action:<7} {c.logical_id:<{width}}  {c.resource_type:<{tw}}{repl}")
    return lines


def stack_status(cfn: Any, stack_name: str) -> str | None:
    """The stack's status, or None when it does not exist (or is deleted)."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        with aws_errors(f"cloudformation:DescribeStacks {stack_name}"):
            raise
    status = stacks[0]["StackStatus"] if stacks else None
    return None if status == "DELETE_COMPLETE" else status


def outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs as a dict."""
    with aws_errors(f"cloudformation:DescribeStacks {stack_name}"):
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def plan(
    cfn: Any,
    *,
    stack_name: str,
    template: Template,
    parameters: dict[str, str],
    tags: dict[str, str] | None = None,
    reporter: Reporter,
    sleep: Sleep = time.sleep,
    poll: float = 2.0,
) -> Plan:
    """Create and describe a change set for ``stack_name``; mutate nothing else."""
    status = stack_status(cfn, stack_name)
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
        # A stack whose first create failed cannot be updated: it must go first.
        reporter.notice(f"{stack_name} is {status} from an earlier failed create; deleting it")
        delete(cfn, stack_name=stack_name, reporter=reporter, sleep=sleep, poll=poll)
        status = None
    elif status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise AwsError(f"stack {stack_name} is busy ({status}); wait for it and retry")
    kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
    if template.too_big_for:
        return _plan_from_template(stack_name, kind, template, reporter)
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE") and _unchanged(cfn, stack_name, template, parameters):
        # Same template, same parameters: CloudFormation would answer "no changes" after a
        # change set round trip of several seconds; answer it without one.
        return Plan(stack_name=stack_name, kind=kind, no_changes=True)
    name = f"gip-{int(time.time())}"
    with aws_errors(f"cloudformation:CreateChangeSet {stack_name}"):
        created = cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType=kind,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
            Tags=[{"Key": k, "Value": v} for k, v in sorted((tags or {}).items())],
            **template.api_args(),
        )
    cs_id, stack_id = created["Id"], created.get("StackId", "")
    described = wait_change_set(cfn, cs_id, sleep=sleep, poll=poll)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if any(marker in reason for marker in NO_CHANGES):
            with aws_errors("cloudformation:DeleteChangeSet"):
                cfn.delete_change_set(ChangeSetName=cs_id)
            return Plan(stack_name=stack_name, kind=kind, stack_id=stack_id, no_changes=True)
        raise DeployFailed(stack_name, "change set", reason)
    changes = parse_changes(described.get("Changes", []))
    # CloudFormation reports "no changes" as FAILED (above). moto may instead return an
    # empty, executable change set for a parameter-only update: execute it all the same.
    return Plan(stack_name=stack_name, kind=kind, change_set_id=cs_id, stack_id=stack_id,
                changes=tuple(changes))


def _plan_from_template(stack_name: str, kind: str, template: Template, reporter: Reporter) -> Plan:
    """A new stack's plan without a change set: every resource of the template is added.

    CreateChangeSet needs a template over 51,200 bytes as an S3 URL, and a first --dry-run
    has no artifacts bucket to upload to (it creates nothing)."""
    from gip.cli.template_source import resources_of

    if kind != "CREATE":
        raise DeployFailed(stack_name, "change set", f"the template is over the inline limit and "
                           f"s3://{template.too_big_for} does not exist: deploy without --dry-run")
    reporter.notice(f"{stack_name}: planned from the template (new stack, over the 51,200-byte inline "
                    f"limit, s3://{template.too_big_for} not created yet)")
    changes = tuple(Change(logical_id, kind_, "Add") for logical_id, kind_ in resources_of(template.body or ""))
    return Plan(stack_name=stack_name, kind=kind, changes=changes)


def _unchanged(cfn: Any, stack_name: str, template: Template, parameters: dict[str, str]) -> bool:
    if template.body is None:
        return False
    with aws_errors(f"cloudformation:GetTemplate {stack_name}"):
        live_body = cfn.get_template(StackName=stack_name, TemplateStage="Original").get("TemplateBody")
        if not isinstance(live_body, str) or live_body != template.body:
            return False
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        # Same body, so the live template's declarations are ours: take the defaults from it.
        declared = cfn.get_template_summary(StackName=stack_name).get("Parameters", [])
    live = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    wanted = effective_parameters(parameters, declared)
    lists = {d["ParameterKey"] for d in declared if _is_list(d.get("ParameterType", ""))}
    return wanted is not None and _normal(live, lists) == _normal(wanted, lists)


def effective_parameters(given: dict[str, str], declared: Iterable[dict[str, Any]]) -> dict[str, str] | None:
    """Pure: the parameters DescribeStacks would show for ``given``: every declared parameter,
    its default filled in where not given. None when a NoEcho value (shown as ``****``) would
    take part, since it cannot be compared."""
    out = dict(given)
    for decl in declared:
        key = decl["ParameterKey"]
        if decl.get("NoEcho"):
            return None
        if key not in out and decl.get("DefaultValue") is not None:
            out[key] = str(decl["DefaultValue"])
    return out


def _is_list(parameter_type: str) -> bool:
    return parameter_type.startswith("List<") or parameter_type == "CommaDelimitedList"


def _normal(values: dict[str, str], lists: set[str]) -> dict[str, Any]:
    """List parameters as item tuples: AWS shows ``a,b``, moto shows ``['a', 'b']``."""
    return {k: tuple(i.strip().strip("'\"") for i in v.strip("[]").split(",") if i.strip()) if k in lists else v
            for k, v in values.items()}


def wait_change_set(cfn: Any, cs_id: str, *, sleep: Sleep, poll: float) -> dict[str, Any]:
    changes: list[dict[str, Any]] = []
    while True:
        with aws_errors("cloudformation:DescribeChangeSet"):
            page = cfn.describe_change_set(ChangeSetName=cs_id)
        if page["Status"] in ("CREATE_COMPLETE", "FAILED"):
            changes.extend(page.get("Changes", []))
            token = page.get("NextToken")
            while token:
                with aws_errors("cloudformation:DescribeChangeSet"):
                    more = cfn.describe_change_set(ChangeSetName=cs_id, NextToken=token)
                changes.extend(more.get("Changes", []))
                token = more.get("NextToken")
            return {**page, "Changes": changes}
        sleep(poll)


def discard(cfn: Any, plan_: Plan) -> None:
    """Delete a plan's change set; a CREATE plan's empty stack goes too (dry run)."""
    if not plan_.change_set_id:
        return
    with aws_errors("cloudformation:DeleteChangeSet"):
        cfn.delete_change_set(ChangeSetName=plan_.change_set_id)
        if plan_.kind == "CREATE":
            cfn.delete_stack(StackName=plan_.stack_id or plan_.stack_name)


def apply(
    cfn: Any,
    plan_: Plan,
    *,
    reporter: Reporter,
    sleep: Sleep = time.sleep,
    poll: float = 3.0,
) -> None:
    """Execute the plan's change set and stream its events until the stack settles."""
    if plan_.no_changes or not plan_.change_set_id:
        return
    stack = plan_.stack_id or plan_.stack_name
    seen = _latest_events(cfn, stack)
    with aws_errors(f"cloudformation:ExecuteChangeSet {plan_.stack_name}"):
        cfn.execute_change_set(ChangeSetName=plan_.change_set_id)
    _follow(cfn, stack, plan_.stack_name, total=len(plan_.changes), seen=seen,
            reporter=reporter, sleep=sleep, poll=poll)


def delete(
    cfn: Any, *, stack_name: str, reporter: Reporter, sleep: Sleep = time.sleep, poll: float = 3.0
) -> None:
    """Delete a stack (if it exists) and stream its events until it is gone."""
    if stack_status(cfn, stack_name) is None:
        return
    with aws_errors(f"cloudformation:DescribeStacks {stack_name}"):
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    stack_id = stack["StackId"]
    seen = _latest_events(cfn, stack_id)
    with aws_errors(f"cloudformation:DeleteStack {stack_name}"):
        cfn.delete_stack(StackName=stack_id)
    total = len(resources(cfn, stack_id))
    _follow(cfn, stack_id, stack_name, total=total, seen=seen, reporter=reporter,
            sleep=sleep, poll=poll, deleting=True)


def resources(cfn: Any, stack: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with aws_errors("cloudformation:ListStackResources"):
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
            out.extend(page["StackResourceSummaries"])
    return out


def _latest_events(cfn: Any, stack: str) -> set[str]:
    """Ids of the newest page of events: later reads stop there (no paging through history)."""
    with aws_errors("cloudformation:DescribeStackEvents"):
        page = cfn.describe_stack_events(StackName=stack)
    return {e["EventId"] for e in page.get("StackEvents", [])}


def _events(cfn: Any, stack: str, *, seen: set[str]) -> list[dict[str, Any]]:
    """New events (not in ``seen``), oldest first. Pages back until a seen event."""
    new: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs = {"StackName": stack, **({"NextToken": token} if token else {})}
        with aws_errors("cloudformation:DescribeStackEvents"):
            page = cfn.describe_stack_events(**kwargs)
        for event in page.get("StackEvents", []):
            if event["EventId"] in seen:
                return list(reversed(new))
            new.append(event)
        token = page.get("NextToken")
        if not token:
            return list(reversed(new))


def _follow(
    cfn: Any, stack: str, stack_name: str, *, total: int, seen: set[str], reporter: Reporter,
    sleep: Sleep, poll: float, deleting: bool = False,
) -> None:
    done: set[str] = set()
    failures: list[dict[str, Any]] = []
    while True:
        for event in _events(cfn, stack, seen=seen):
            seen.add(event["EventId"])
            status = event.get("ResourceStatus", "")
            is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack"
            if not is_stack and status.endswith(RESOURCE_DONE):
                done.add(event["LogicalResourceId"])
            if status.endswith("_FAILED") and "cancelled" not in event.get("ResourceStatusReason", ""):
                failures.append(event)
            reporter.event(len(done), max(total, len(done)), event)
        status = _status_by_id(cfn, stack)
        if deleting and status == "DELETE_COMPLETE":
            return
        if status in DONE_OK and not deleting:
            return
        if status in DONE_BAD:
            first = next((f for f in failures if f.get("ResourceType") != "AWS::CloudFormation::Stack"),
                         failures[0] if failures else {})
            raise DeployFailed(
                stack_name,
                f"{first.get('LogicalResourceId', '')} ({first.get('ResourceType', '')})" if first else "",
                first.get("ResourceStatusReason", status) if first else status,
            )
        sleep(poll)


def _status_by_id(cfn: Any, stack: str) -> str:
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        if error_code(exc) == "ValidationError":
            return "DELETE_COMPLETE"
        with aws_errors("cloudformation:DescribeStacks"):
            raise
    return stacks[0]["StackStatus"] if stacks else "DELETE_COMPLETE"
