"""The member-account StackSet: service-managed, auto-deployed to the org root or given OUs.

``deploy`` creates or updates the StackSet (SERVICE_MANAGED, AutoDeployment on,
RetainStacksOnAccountRemoval off) and adds instances for target OUs it does not cover yet.
An unchanged template, parameters and targets make it a no-op with no operation started.
``delete`` removes every instance and then the StackSet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gip.adapters.aws import aws_errors, error_code
from gip.cli.stacks import Reporter
from gip.errors import AwsError

Sleep = Callable[[float], None]
PREFERENCES = {
    "RegionConcurrencyType": "PARALLEL",
    "MaxConcurrentPercentage": 50,
    "FailureTolerancePercentage": 20,
}


def org_root(organizations: Any) -> str:
    """The organization's root id (``r-...``)."""
    with aws_errors("organizations:ListRoots"):
        roots = organizations.list_roots()["Roots"]
    if not roots:
        raise AwsError("the organization has no root: is this the management account?")
    return str(roots[0]["Id"])


def describe(cfn: Any, name: str) -> dict[str, Any] | None:
    """The StackSet, or None if it does not exist."""
    try:
        return dict(cfn.describe_stack_set(StackSetName=name)["StackSet"])
    except Exception as exc:
        if error_code(exc) == "StackSetNotFoundException":
            return None
        with aws_errors(f"cloudformation:DescribeStackSet {name}"):
            raise


def needs_update(current: dict[str, Any], *, template: str, parameters: dict[str, str]) -> bool:
    """Pure: does the live StackSet differ from what we would deploy?"""
    return current.get("TemplateBody", "").strip() != template.strip() or bool(
        changed_parameters(current, parameters))


def changed_parameters(current: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """Pure: the parameter keys whose live value differs from ``parameters`` (sorted)."""
    live = {p["ParameterKey"]: p.get("ParameterValue", "") for p in current.get("Parameters", [])}
    return sorted(k for k in live.keys() | parameters.keys() if live.get(k) != parameters.get(k))


def deploy(
    cfn: Any,
    *,
    name: str,
    template: str,
    parameters: dict[str, str],
    ou_ids: list[str],
    region: str,
    reporter: Reporter,
    sleep: Sleep = time.sleep,
    poll: float = 5.0,
) -> bool:
    """Create/update the StackSet and its OU targets. Returns True if anything changed."""
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())]
    current = describe(cfn, name)
    changed = False
    if current is None:
        with aws_errors("cloudformation:ActivateOrganizationsAccess"):
            try:
                cfn.activate_organizations_access()
            except Exception as exc:  # already active, or not offered by this endpoint
                if error_code(exc) not in ("", "InvalidOperationException"):
                    raise
        with aws_errors(f"cloudformation:CreateStackSet {name}"):
            cfn.create_stack_set(
                StackSetName=name,
                Description="github-issue-processor member accounts: processing role + registration",
                TemplateBody=template,
                Parameters=params,
                Capabilities=["CAPABILITY_NAMED_IAM"],
                PermissionModel="SERVICE_MANAGED",
                AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
                ManagedExecution={"Active": True},
            )
        reporter.info(f"StackSet {name}: created")
        covered: set[str] = set()
        changed = True
    else:
        covered = covered_ous(cfn, name, current)
        if needs_update(current, template=template, parameters=parameters):
            with aws_errors(f"cloudformation:UpdateStackSet {name}"):
                op = cfn.update_stack_set(
                    StackSetName=name, TemplateBody=template, Parameters=params,
                    Capabilities=["CAPABILITY_NAMED_IAM"], PermissionModel="SERVICE_MANAGED",
                    AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
                    OperationPreferences=PREFERENCES,
                )["OperationId"]
            changed_keys = changed_parameters(current, parameters)
            if "WorkerTaskRoleId" in changed_keys:
                # Trust policies hold the role's unique id: a re-created worker role is trusted
                # again only once every instance's trust policy is re-written.
                reporter.info(f"StackSet {name}: the worker role was re-created; re-trusting it in every account")
            reporter.info(f"StackSet {name}: updating existing instances"
                          + (f" (parameters: {', '.join(changed_keys)})" if changed_keys else ""))
            wait(cfn, name, op, reporter=reporter, sleep=sleep, poll=poll)
            changed = True
    missing = [ou for ou in ou_ids if ou not in covered]
    if missing:
        with aws_errors(f"cloudformation:CreateStackInstances {name}"):
            op = cfn.create_stack_instances(
                StackSetName=name,
                DeploymentTargets={"OrganizationalUnitIds": missing},
                Regions=[region],
                OperationPreferences=PREFERENCES,
            )["OperationId"]
        reporter.info(f"StackSet {name}: deploying to {', '.join(missing)} in {region}")
        wait(cfn, name, op, reporter=reporter, sleep=sleep, poll=poll)
        changed = True
    if not changed:
        reporter.info(f"StackSet {name}: no changes")
    return changed


def covered_ous(cfn: Any, name: str, current: dict[str, Any]) -> set[str]:
    """OUs the StackSet already targets (from the StackSet and from its instances)."""
    ous = set(current.get("OrganizationalUnitIds") or [])
    with aws_errors(f"cloudformation:ListStackInstances {name}"):
        for page in cfn.get_paginator("list_stack_instances").paginate(StackSetName=name):
            ous.update(s["OrganizationalUnitId"] for s in page["Summaries"] if s.get("OrganizationalUnitId"))
    return ous


def wait(
    cfn: Any, name: str, operation_id: str, *, reporter: Reporter, sleep: Sleep, poll: float
) -> None:
    """Poll a StackSet operation; on failure raise with the first failing account's reason."""
    last = ""
    while True:
        with aws_errors("cloudformation:DescribeStackSetOperation"):
            op = cfn.describe_stack_set_operation(StackSetName=name, OperationId=operation_id)
        status = op["StackSetOperation"]["Status"]
        if status != last:
            reporter.info(f"StackSet {name}: operation {operation_id[:8]} {status}")
            last = status
        if status == "SUCCEEDED":
            return
        if status in ("FAILED", "STOPPED"):
            raise AwsError(f"StackSet {name} operation {status}: {first_failure(cfn, name, operation_id)}")
        sleep(poll)


def first_failure(cfn: Any, name: str, operation_id: str) -> str:
    """The first account whose instance failed, with its reason (best effort)."""
    try:
        results = cfn.list_stack_set_operation_results(StackSetName=name, OperationId=operation_id)
    except Exception:
        return "see the CloudFormation console"
    for r in results.get("Summaries", []):
        if r.get("Status") not in ("SUCCEEDED",):
            return f"account {r.get('Account')} {r.get('Region')}: {r.get('StatusReason', r.get('Status'))}"
    return "no per-account detail"


def delete(
    cfn: Any, *, name: str, region: str, reporter: Reporter, sleep: Sleep = time.sleep,
    poll: float = 5.0, fallback_ous: Callable[[], list[str]] = list,
) -> bool:
    """Delete every instance (not retained), then the StackSet. False if there was none.

    ``fallback_ous`` names the targets when the endpoint does not report them (moto).
    """
    current = describe(cfn, name)
    if current is None:
        return False
    ous = sorted(covered_ous(cfn, name, current))
    if not ous and cfn.list_stack_instances(StackSetName=name)["Summaries"]:
        ous = fallback_ous()
    if ous:
        with aws_errors(f"cloudformation:DeleteStackInstances {name}"):
            op = cfn.delete_stack_instances(
                StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": ous},
                Regions=[region], RetainStacks=False, OperationPreferences=PREFERENCES,
            )["OperationId"]
        wait(cfn, name, op, reporter=reporter, sleep=sleep, poll=poll)
    with aws_errors(f"cloudformation:DeleteStackSet {name}"):
        cfn.delete_stack_set(StackSetName=name)
    reporter.info(f"StackSet {name}: deleted")
    return True
