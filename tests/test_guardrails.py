"""The guardrails SCP: what it denies (evaluated, not just read), its size, and applying it on
moto's Organizations (in process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.cli import guardrails as g
from gip.errors import UsageError

PREFIX = "gip"
TOPIC = "arn:aws:sns:us-east-1:111122223333:gip-registrar"
PROCESSING = "arn:aws:iam::222233334444:role/gip-processing"
STACKSET_EXEC = "arn:aws:iam::222233334444:role/stacksets-exec-0123456789abcdef0123456789abcdef"
MEMBER_STACK = "arn:aws:cloudformation:us-east-1:222233334444:stack/StackSet-gip-member-5e1f/0a1b2c3d-1111"


def scp(regions: tuple[str, ...] = ("us-east-1",)) -> dict[str, Any]:
    return g.document(prefix=PREFIX, regions=list(regions), registrar_topic_arn=TOPIC)


# A small evaluator of Deny statements: enough of IAM's matching for the keys the SCP uses.
def _like(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))


def _condition_holds(condition: dict[str, Any], ctx: dict[str, Any]) -> bool:
    for op, keys in condition.items():
        for key, want in keys.items():
            have = ctx.get(key)
            if op in ("StringLike", "ArnLike"):
                ok = have is not None and _like(want, have)
            elif op in ("StringNotEquals",):
                ok = have is not None and have not in ([want] if isinstance(want, str) else want)
            elif op == "ArnNotLike":
                ok = have is None or not _like(want, have)
            elif op == "ForAnyValue:StringLike":
                ok = any(_like(want, v) for v in (have or []))
            else:
                raise AssertionError(f"the evaluator does not know {op}")
            if not ok:
                return False
    return True


def denied(policy: dict[str, Any], action: str, resource: str = "*", **ctx: Any) -> bool:
    ctx.setdefault("aws:RequestedRegion", "us-east-1")
    ctx.setdefault("aws:PrincipalArn", PROCESSING)
    for s in policy["Statement"]:
        assert s["Effect"] == "Deny"
        if "Action" in s and not _like(s["Action"], action):
            continue
        if "NotAction" in s and _like(s["NotAction"], action):
            continue
        if not _like(s["Resource"], resource):
            continue
        if _condition_holds(s.get("Condition", {}), ctx):
            return True
    return False


def test_the_processing_role_cannot_leave_or_touch_the_pool_machinery() -> None:
    policy = scp()
    assert denied(policy, "organizations:LeaveOrganization")
    for action in ("iam:DeleteRole", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePolicy"):
        assert denied(policy, action, PROCESSING), action
        assert denied(policy, action, STACKSET_EXEC), action
    for action in ("cloudformation:DeleteStack", "cloudformation:UpdateStack", "cloudformation:ExecuteChangeSet"):
        assert denied(policy, action, MEMBER_STACK), action
    assert denied(policy, "sns:Publish", TOPIC)


def test_the_stackset_execution_role_may_still_manage_its_stack_and_register() -> None:
    policy = scp()
    exec_ctx = {"aws:PrincipalArn": STACKSET_EXEC}
    assert not denied(policy, "cloudformation:DeleteStack", MEMBER_STACK, **exec_ctx)
    assert not denied(policy, "iam:DeleteRole", PROCESSING, **exec_ctx)
    assert not denied(policy, "sns:Publish", TOPIC, **exec_ctx)
    # ... but it leaves the Organization no more than anyone else.
    assert denied(policy, "organizations:LeaveOrganization", **exec_ctx)


def test_a_reproductions_own_roles_and_stacks_are_not_protected() -> None:
    policy = scp()
    assert not denied(policy, "iam:DeleteRole", "arn:aws:iam::222233334444:role/repro-role")
    assert not denied(policy, "cloudformation:DeleteStack",
                      "arn:aws:cloudformation:us-east-1:222233334444:stack/repro/0a1b")
    assert not denied(policy, "sns:Publish", "arn:aws:sns:us-east-1:222233334444:repro-topic")


def test_regions_outside_the_list_are_denied_except_for_global_services() -> None:
    policy = scp(("us-east-1", "eu-west-1"))
    assert not denied(policy, "ec2:RunInstances", "arn:aws:ec2:eu-west-1:2:instance/*",
                      **{"aws:RequestedRegion": "eu-west-1", "ec2:InstanceType": "t3.micro"})
    assert denied(policy, "ec2:RunInstances", "arn:aws:ec2:ap-south-1:2:instance/*",
                  **{"aws:RequestedRegion": "ap-south-1", "ec2:InstanceType": "t3.micro"})
    assert denied(policy, "s3:CreateBucket", **{"aws:RequestedRegion": "ap-south-1"})
    for action in ("iam:CreateRole", "sts:AssumeRole", "route53:ChangeResourceRecordSets", "cloudfront:CreateDistribution"):
        assert not denied(policy, action, **{"aws:RequestedRegion": "ap-south-1"}), action


@pytest.mark.parametrize(("instance_type", "costly"), [
    ("t3.micro", False), ("m5.large", False), ("c6i.4xlarge", False), ("r6g.2xlarge", False),
    ("p4d.24xlarge", True), ("g5.xlarge", True), ("inf2.xlarge", True), ("trn1.2xlarge", True),
    ("m5.metal", True), ("c7i.metal-48xl", True), ("x2iedn.xlarge", True), ("u-6tb1.112xlarge", True),
    ("m5.8xlarge", True), ("c5.12xlarge", True), ("r5.24xlarge", True), ("m7i.48xlarge", True),
])
def test_costly_instance_types_are_denied(instance_type: str, costly: bool) -> None:
    assert denied(scp(), "ec2:RunInstances", "arn:aws:ec2:us-east-1:2:instance/*",
                  **{"ec2:InstanceType": instance_type}) is costly


def test_costly_services_and_ml_instances_are_denied() -> None:
    policy = scp()
    for action in ("redshift:CreateCluster", "savingsplans:CreateSavingsPlan", "shield:CreateSubscription",
                   "ec2:PurchaseReservedInstancesOffering", "route53domains:RegisterDomain"):
        assert denied(policy, action), action
    assert denied(policy, "sagemaker:CreateTrainingJob", **{"sagemaker:InstanceTypes": ["ml.p4d.24xlarge"]})
    assert not denied(policy, "sagemaker:CreateTrainingJob", **{"sagemaker:InstanceTypes": ["ml.m5.large"]})


def test_the_rendered_scp_fits_the_limit_and_every_action_is_known() -> None:
    text = g.render(scp(("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
                         "ap-southeast-2", "ap-northeast-1", "sa-east-1")))
    assert len(text) <= g.MAX_SCP_CHARS
    from parliament import analyze_policy_string  # here: each xdist worker collects every file

    findings = [(f.issue, f.detail) for f in analyze_policy_string(text).findings
                if f.issue in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX", "MALFORMED")]
    assert findings == []
    too_many = scp(tuple(f"xx-test-{n}" for n in range(400)))
    with pytest.raises(UsageError, match="over the 5120 limit"):
        g.render(too_many)


def test_guardrails_choice_parses_none_default_and_scp_ids() -> None:
    assert g.parse_choice(None) == g.Choice("ours")
    assert g.parse_choice("none").text == "none"
    own = g.parse_choice("p-abcd1234,p-efgh5678")
    assert (own.mode, own.policy_ids, own.text) == ("own", ("p-abcd1234", "p-efgh5678"), "p-abcd1234,p-efgh5678")
    for bad in ("nope", "p-1", "p-abcd1234,arn:aws:x", ","):
        with pytest.raises(UsageError, match="--guardrails takes none or SCP ids"):
            g.parse_choice(bad)


# --------------------------------------------------------------------------- apply, on moto

@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        orgs = boto3.client("organizations", region_name="us-east-1")
        orgs.create_organization(FeatureSet="ALL")
        root = orgs.list_roots()["Roots"][0]["Id"]
        ous = [orgs.create_organizational_unit(ParentId=root, Name=n)["OrganizationalUnit"]["Id"]
               for n in ("pool-a", "pool-b")]
        yield orgs, ous


def targets_of(orgs: Any, policy_id: str) -> set[str]:
    return {t["TargetId"] for t in orgs.list_targets_for_policy(PolicyId=policy_id)["Targets"]}


def test_apply_creates_attaches_and_is_idempotent(org: tuple[Any, list[str]]) -> None:
    orgs, (a, b) = org
    notices: list[str] = []
    content = g.render(scp())
    first = g.apply(orgs, name="gip-guardrails", choice=g.Choice("ours"), targets=[a, b], content=content,
                    notice=notices.append)
    [policy] = first.policy_ids
    assert first.created and sorted(first.attached) == sorted([f"{policy}@{a}", f"{policy}@{b}"])
    described = orgs.describe_policy(PolicyId=policy)["Policy"]
    assert described["PolicySummary"]["Name"] == "gip-guardrails"
    assert described["PolicySummary"]["Type"] == "SERVICE_CONTROL_POLICY"
    assert json.loads(described["Content"]) == scp()
    assert targets_of(orgs, policy) == {a, b}
    root = orgs.list_roots()["Roots"][0]
    assert {"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"} in root["PolicyTypes"]

    again = g.apply(orgs, name="gip-guardrails", choice=g.Choice("ours"), targets=[a, b], content=content,
                    notice=notices.append)
    assert (again.created, again.updated, again.attached, again.detached) == (False, False, [], [])

    wider = g.render(scp(("us-east-1", "eu-west-1")))
    moved = g.apply(orgs, name="gip-guardrails", choice=g.Choice("ours"), targets=[a], content=wider,
                    notice=notices.append)
    assert moved.updated and moved.detached == [f"{policy}@{b}"]
    assert targets_of(orgs, policy) == {a}
    assert json.loads(orgs.describe_policy(PolicyId=policy)["Policy"]["Content"])["Statement"][4]["Condition"] == \
        {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}
    assert notices == []


def test_own_scps_replace_ours_and_none_warns_and_detaches(org: tuple[Any, list[str]]) -> None:
    orgs, (a, b) = org
    content = g.render(scp())
    [ours] = g.apply(orgs, name="gip-guardrails", choice=g.Choice("ours"), targets=[a, b], content=content,
                     notice=print).policy_ids
    theirs = orgs.create_policy(Name="corp-sandbox", Type="SERVICE_CONTROL_POLICY", Description="theirs",
                                Content=json.dumps({"Version": "2012-10-17", "Statement": [
                                    {"Effect": "Deny", "Action": "account:*", "Resource": "*"}]}))
    their_id = theirs["Policy"]["PolicySummary"]["Id"]

    own = g.apply(orgs, name="gip-guardrails", choice=g.Choice("own", (their_id,)), targets=[a, b],
                  content=content, notice=print)
    assert own.policy_ids == (their_id,)
    assert targets_of(orgs, their_id) == {a, b} and targets_of(orgs, ours) == set()

    notices: list[str] = []
    g.apply(orgs, name="gip-guardrails", choice=g.Choice("ours"), targets=[a, b], content=content, notice=print)
    none = g.apply(orgs, name="gip-guardrails", choice=g.Choice("none"), targets=[a, b], content=content,
                   notice=notices.append)
    assert none.policy_ids == () and targets_of(orgs, ours) == set()
    [line] = notices
    assert line.startswith("--guardrails none:") and "\n" not in line


def test_ensure_renders_for_the_deployment_and_says_what_it_did(org: tuple[Any, list[str]]) -> None:
    orgs, (a, _) = org
    lines: list[str] = []
    done = g.ensure(orgs, prefix="gip", choice=g.Choice("ours"), ou_ids=[a], regions=["us-east-1"],
                    topic_arn="arn:aws-cn:sns:cn-north-1:111122223333:gip-registrar",
                    notice=lines.append, info=lines.append)
    [policy] = done.policy_ids
    content = json.loads(orgs.describe_policy(PolicyId=policy)["Policy"]["Content"])
    assert content == g.document(prefix="gip", regions=["us-east-1"], partition="aws-cn",
                                 registrar_topic_arn="arn:aws-cn:sns:cn-north-1:111122223333:gip-registrar")
    assert lines == [f"guardrails (gip-guardrails) on {a}: 2 change(s)"]
    g.ensure(orgs, prefix="gip", choice=g.Choice("ours"), ou_ids=[a], regions=["us-east-1"],
             topic_arn="arn:aws-cn:sns:cn-north-1:111122223333:gip-registrar", notice=lines.append, info=lines.append)
    assert lines[-1] == f"guardrails (gip-guardrails) on {a}: no changes"
