"""The ``<prefix>-guardrails`` service control policy on the pool's OUs.

``document(...)`` is pure: the SCP as data, one statement per guardrail (each is explained in
docs/lifecycle.md, "Guardrails"). ``apply(...)`` is the thin step that creates or updates the
policy and attaches it to exactly the target OUs, idempotently. ``--guardrails none`` attaches
nothing (with a warning); ``--guardrails p-1,p-2`` attaches the operator's own SCPs instead.

An SCP never applies to the management account or to service-linked roles, and it only
denies: what the processing role may do still comes from its own policies.
https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gip.adapters.aws import aws_errors, error_code
from gip.errors import AwsError, UsageError

SCP_TYPE = "SERVICE_CONTROL_POLICY"
MAX_SCP_CHARS = 5120  # Organizations' limit on an SCP document
POLICY_ID = re.compile(r"^p-[0-9a-z]{8,128}$")
STACKSET_EXEC_ROLE = "arn:{partition}:iam::*:role/stacksets-exec-*"

# Global services answer in us-east-1 (or their own home region) whatever region the pool uses;
# the AWS example "Deny access to AWS based on the requested Region" exempts them the same way.
GLOBAL_SERVICES = (
    "account:*", "budgets:*", "ce:*", "cloudfront:*", "globalaccelerator:*", "health:*",
    "iam:*", "organizations:*", "route53:*", "route53domains:*", "sts:*", "support:*",
    "trustedadvisor:*", "waf:*", "s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock",
)
# GPU, accelerator, bare-metal, high-memory and the largest sizes of every family.
COSTLY_INSTANCE_TYPES = (
    "p*", "g*", "inf*", "trn*", "dl*", "f1.*", "f2.*", "vt1.*", "x1*", "x2*", "u-*", "u7*",
    "hpc*", "mac*", "*.metal*", "*.8xlarge", "*.9xlarge", "*.1?xlarge", "*.2?xlarge",
    "*.3?xlarge", "*.4?xlarge", "*.5?xlarge", "*.9?xlarge", "*.1??xlarge",
)
COSTLY_ML_INSTANCE_TYPES = ("ml.p*", "ml.g*", "ml.inf*", "ml.trn*", "ml.*.8xlarge", "ml.*.1?xlarge",
                            "ml.*.2?xlarge", "ml.*.4?xlarge")
# Long commitments and services whose smallest unit is expensive or slow to remove.
COSTLY_ACTIONS = (
    "ec2:PurchaseReservedInstancesOffering", "ec2:PurchaseHostReservation",
    "ec2:PurchaseScheduledInstances", "ec2:AllocateHosts", "ec2:CreateCapacityReservation",
    "savingsplans:CreateSavingsPlan", "rds:PurchaseReservedDBInstancesOffering",
    "elasticache:PurchaseReservedCacheNodesOffering", "redshift:PurchaseReservedNodeOffering",
    "dynamodb:PurchaseReservedCapacityOfferings", "es:PurchaseReservedInstanceOffering",
    "route53domains:RegisterDomain", "route53domains:TransferDomain", "shield:CreateSubscription",
    "redshift:CreateCluster", "outposts:CreateOutpost", "snowball:CreateJob",
    "directconnect:CreateConnection", "aws-marketplace:Subscribe",
)
ROLE_CHANGES = (
    "iam:AttachRolePolicy", "iam:DeleteRole", "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
    "iam:UpdateRoleDescription", "iam:TagRole", "iam:UntagRole",
)
STACK_CHANGES = (
    "cloudformation:DeleteStack", "cloudformation:UpdateStack", "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet", "cloudformation:SetStackPolicy",
    "cloudformation:UpdateTerminationProtection", "cloudformation:CancelUpdateStack",
    "cloudformation:ContinueUpdateRollback", "cloudformation:RollbackStack",
)


@dataclass(frozen=True)
class Choice:
    """``--guardrails``: ours (default), none, or the operator's own SCP ids."""

    mode: str  # "ours" | "none" | "own"
    policy_ids: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """How the choice is remembered (the management stack's ``Guardrails`` parameter)."""
        return {"ours": "default", "none": "none"}.get(self.mode, ",".join(self.policy_ids))


def parse_choice(value: str | None) -> Choice:
    """Pure: the ``--guardrails`` value; UsageError (exit 2) with one line if malformed."""
    text = (value or "").strip()
    if text in ("", "default"):
        return Choice("ours")
    if text == "none":
        return Choice("none")
    ids = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in ids if not POLICY_ID.match(v)]
    if bad or not ids:
        raise UsageError(f"--guardrails takes none or SCP ids like p-abcd1234 (comma-separated), got {text!r}")
    return Choice("own", ids)


def document(*, prefix: str, regions: list[str], registrar_topic_arn: str, partition: str = "aws") -> dict[str, Any]:
    """Pure: the guardrails SCP. Everything the StackSet itself must do is exempted by
    ``aws:PrincipalArn`` (its ``stacksets-exec-*`` role), never by account."""
    if not regions:
        raise UsageError("the guardrails need at least one allowed region")
    exec_role = {"ArnNotLike": {"aws:PrincipalArn": STACKSET_EXEC_ROLE.format(partition=partition)}}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyLeavingTheOrganization", "Effect": "Deny",
         "Action": "organizations:LeaveOrganization", "Resource": "*"},
        {"Sid": "ProtectPoolRoles", "Effect": "Deny", "Action": list(ROLE_CHANGES),
         "Resource": [f"arn:{partition}:iam::*:role/{prefix}-processing",
                      f"arn:{partition}:iam::*:role/stacksets-exec-*"],
         "Condition": exec_role},
        {"Sid": "ProtectMemberStackAndRegistration", "Effect": "Deny", "Action": list(STACK_CHANGES),
         "Resource": f"arn:{partition}:cloudformation:*:*:stack/StackSet-{prefix}-member-*/*",
         "Condition": exec_role},
        {"Sid": "DenyPublishingToTheRegistrar", "Effect": "Deny", "Action": "sns:Publish",
         "Resource": registrar_topic_arn, "Condition": exec_role},
        {"Sid": "DenyOtherRegions", "Effect": "Deny", "NotAction": list(GLOBAL_SERVICES),
         "Resource": "*", "Condition": {"StringNotEquals": {"aws:RequestedRegion": sorted(set(regions))}}},
        {"Sid": "DenyCostlyInstanceTypes", "Effect": "Deny", "Action": "ec2:RunInstances",
         "Resource": f"arn:{partition}:ec2:*:*:instance/*",
         "Condition": {"StringLike": {"ec2:InstanceType": list(COSTLY_INSTANCE_TYPES)}}},
        {"Sid": "DenyCostlyMlInstanceTypes", "Effect": "Deny",
         "Action": ["sagemaker:CreateNotebookInstance", "sagemaker:CreateTrainingJob",
                    "sagemaker:CreateEndpointConfig", "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:CreateProcessingJob", "sagemaker:CreateTransformJob"],
         "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"sagemaker:InstanceTypes": list(COSTLY_ML_INSTANCE_TYPES)}}},
        {"Sid": "DenyCostlyServicesAndCommitments", "Effect": "Deny", "Action": list(COSTLY_ACTIONS),
         "Resource": "*"},
    ]}


def render(policy: dict[str, Any]) -> str:
    """Pure: the document as sent (minified: the 5,120-character limit counts every character)."""
    text = json.dumps(policy, separators=(",", ":"))
    if len(text) > MAX_SCP_CHARS:
        raise UsageError(f"the guardrails SCP is {len(text)} characters, over the {MAX_SCP_CHARS} limit "
                         "(fewer --regions, or --guardrails with your own SCP ids)")
    return text


# --------------------------------------------------------------------------- the apply step

def ensure(orgs: Any, *, prefix: str, choice: Choice, ou_ids: list[str], regions: list[str],
           topic_arn: str, notice: Callable[[str], None], info: Callable[[str], None]) -> Applied:
    """Deploy's one call: render our SCP for this deployment and apply the choice to the OUs."""
    partition = topic_arn.split(":")[1] if topic_arn.count(":") >= 5 else "aws"
    content = render(document(prefix=prefix, regions=regions, partition=partition,
                              registrar_topic_arn=topic_arn or f"arn:{partition}:sns:*:*:{prefix}-registrar"))
    done = apply(orgs, name=f"{prefix}-guardrails", choice=choice, targets=ou_ids, content=content, notice=notice)
    what = {"ours": f"{prefix}-guardrails", "none": "none"}.get(choice.mode, ", ".join(choice.policy_ids))
    changes = len(done.attached) + len(done.detached) + int(done.created or done.updated)
    info(f"guardrails ({what}) on {', '.join(ou_ids)}: {f'{changes} change(s)' if changes else 'no changes'}")
    return done


@dataclass
class Applied:
    """What ``apply`` did, for the progress line and the tests."""

    policy_ids: tuple[str, ...] = ()
    created: bool = False
    updated: bool = False
    attached: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)


def apply(orgs: Any, *, name: str, choice: Choice, targets: list[str], content: str,
          notice: Callable[[str], None]) -> Applied:
    """Make the targets carry the chosen guardrails, idempotently; our own SCP is detached
    from any target it should no longer guard (``none``, own SCPs, or an OU dropped)."""
    _enable_scps(orgs)
    ours = _find(orgs, name)
    result = Applied()
    if choice.mode == "ours":
        if ours is None:
            with aws_errors(f"organizations:CreatePolicy {name}"):
                ours = orgs.create_policy(Name=name, Type=SCP_TYPE, Content=content,
                                          Description="github-issue-processor pool guardrails")["Policy"]["PolicySummary"]["Id"]
            result.created = True
        elif _content(orgs, ours) != json.loads(content):
            with aws_errors(f"organizations:UpdatePolicy {name}"):
                orgs.update_policy(PolicyId=ours, Content=content)
            result.updated = True
        wanted: tuple[str, ...] = (ours,)
    else:
        if choice.mode == "none":
            notice(f"--guardrails none: the pool OUs get no SCP from us; a reproduction may leave the "
                   f"Organization, remove {name.removesuffix('-guardrails')}-processing or use any region")
        wanted = choice.policy_ids
    for policy in wanted:
        have = _targets(orgs, policy)
        for target in targets:
            if target not in have:
                with aws_errors(f"organizations:AttachPolicy {policy} {target}"):
                    orgs.attach_policy(PolicyId=policy, TargetId=target)
                result.attached.append(f"{policy}@{target}")
    if ours is not None:
        keep = set(targets) if ours in wanted else set()
        for target in sorted(_targets(orgs, ours) - keep):
            with aws_errors(f"organizations:DetachPolicy {ours} {target}"):
                orgs.detach_policy(PolicyId=ours, TargetId=target)
            result.detached.append(f"{ours}@{target}")
    result.policy_ids = wanted
    return result


def _enable_scps(orgs: Any) -> None:
    """SCPs must be enabled on the root before any can be attached."""
    with aws_errors("organizations:ListRoots"):
        roots = orgs.list_roots()["Roots"]
    if not roots:
        raise AwsError("the organization has no root: is this the management account?")
    root = roots[0]
    if any(t.get("Type") == SCP_TYPE and t.get("Status") == "ENABLED" for t in root.get("PolicyTypes", [])):
        return
    try:
        orgs.enable_policy_type(RootId=root["Id"], PolicyType=SCP_TYPE)
    except Exception as exc:
        if error_code(exc) != "PolicyTypeAlreadyEnabledException":
            with aws_errors("organizations:EnablePolicyType"):
                raise


def _find(orgs: Any, name: str) -> str | None:
    with aws_errors("organizations:ListPolicies"):
        for page in orgs.get_paginator("list_policies").paginate(Filter=SCP_TYPE):
            for policy in page["Policies"]:
                if policy["Name"] == name:
                    return str(policy["Id"])
    return None


def _content(orgs: Any, policy_id: str) -> Any:
    with aws_errors(f"organizations:DescribePolicy {policy_id}"):
        return json.loads(orgs.describe_policy(PolicyId=policy_id)["Policy"]["Content"])


def _targets(orgs: Any, policy_id: str) -> set[str]:
    with aws_errors(f"organizations:ListTargetsForPolicy {policy_id}"):
        pages = orgs.get_paginator("list_targets_for_policy").paginate(PolicyId=policy_id)
        return {t["TargetId"] for page in pages for t in page["Targets"]}
