"""Every IAM policy in templates/ passes parliament (issue 12 §5).

No real AWS is reachable, so the policies are linted offline: the templates are resolved with
placeholder ARNs of the right shape (tests/cfn_placeholders.py), and parliament checks each
document for unknown actions, resources that do not fit their action, and its other findings.
Every finding fails the test unless SUPPRESSED below says why it is wrong.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gip.local.gaps import load_template
from tests.cfn_placeholders import ACCOUNT, resolver

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
RESOURCE_POLICIES = {"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy",
                     "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
ACCOUNT_ROOT = f"arn:aws:iam::{ACCOUNT}:root"
STREAM_ARN = re.compile(r"^arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[^/]+/stream/\d{4}-\d\d-\d\dT[\d:.]+$")


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def documents(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(resource type, label, resolved policy document) for every policy in the template."""
    res = resolver(template)
    found = []
    for logical_id, spec in template["Resources"].items():
        rtype, props = spec["Type"], spec.get("Properties", {})
        if rtype == "AWS::IAM::Role":
            # A trust policy has no Resource: its resource is the role, so lint it as such.
            trust = copy.deepcopy(res.value(props["AssumeRolePolicyDocument"]))
            role_arn = res.get_att(logical_id, "Arn")
            for statement in trust["Statement"]:
                statement["Resource"] = role_arn
            found.append((rtype, f"{logical_id} trust", trust))
            for policy in props.get("Policies", []):
                found.append((rtype, f"{logical_id} {policy['PolicyName']}", res.value(policy["PolicyDocument"])))
        elif rtype == "AWS::KMS::Key":
            # In a key policy "*" means this key: lint it as the key's ARN. Not for "kms:*",
            # which parliament expands to account-level actions too (see SUPPRESSED).
            doc = copy.deepcopy(res.value(props["KeyPolicy"]))
            for statement in doc["Statement"]:
                if _listify(statement["Action"]) != ["kms:*"]:
                    statement["Resource"] = res.get_att(logical_id, "Arn")
            found.append((rtype, f"{logical_id} key policy", doc))
        elif rtype in RESOURCE_POLICIES:
            found.append((rtype, logical_id, res.value(props["PolicyDocument"])))
    return found


def _key_admin_in_a_key_policy(finding: Any, doc: dict[str, Any], rtype: str) -> bool:
    # The key policy's administrator statement ("kms:*" on "*") is AWS's default key policy: a key
    # policy only ever governs its own key, so "*" is not every resource here.
    if rtype != "AWS::KMS::Key" or finding.issue != "RESOURCE_STAR":
        return False
    admin = [s for s in doc["Statement"] if _listify(s["Action"]) == ["kms:*"]]
    return len(admin) == 1 and admin[0]["Principal"] == {"AWS": ACCOUNT_ROOT} and all(
        a.startswith("kms:") for a in finding.detail)


def _stream_read_on_a_stream_arn(finding: Any, doc: dict[str, Any], rtype: str) -> bool:
    # parliament splits ARNs on ':', and a stream ARN ends in a timestamp with colons
    # (table/<t>/stream/2026-01-01T00:00:00.000), so it never matches table/*/stream/*.
    # Suppressed only when every resource of every such statement really is a stream ARN.
    if finding.issue != "RESOURCE_MISMATCH":
        return False
    if not all(d["required_format"].endswith("/stream/*") for d in finding.detail):
        return False
    actions = {d["action"] for d in finding.detail}
    return all(STREAM_ARN.match(r) for s in doc["Statement"] if actions & set(_listify(s["Action"]))
               for r in _listify(s["Resource"]))


SUPPRESSED = {
    "dynamodb stream ARN with colons": _stream_read_on_a_stream_arn,
    "administrator statement of a key policy": _key_admin_in_a_key_policy,
}


def lint(doc: dict[str, Any], rtype: str = "AWS::IAM::Role") -> list[Any]:
    """parliament's findings on ``doc`` (a policy of a ``rtype`` resource) that no SUPPRESSED rule explains."""
    from parliament import analyze_policy_string  # here: each xdist worker collects every file

    policy = analyze_policy_string(json.dumps(doc))
    return [f for f in policy.findings if not any(rule(f, doc, rtype) for rule in SUPPRESSED.values())]


ALL = [(path.name, *doc) for path in sorted(TEMPLATES.glob("*.yaml"))
       for doc in documents(load_template(path.read_text()))]


@pytest.mark.parametrize(("template", "rtype", "label", "doc"), ALL, ids=[f"{t}:{lbl}" for t, _, lbl, _ in ALL])
def test_policy_has_no_parliament_findings(template: str, rtype: str, label: str, doc: dict[str, Any]) -> None:
    findings = lint(doc, rtype)
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_every_kind_of_policy_in_the_templates_is_linted() -> None:
    kinds = {rtype for _, rtype, _, _ in ALL}
    assert {"AWS::IAM::Role", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy",
            "AWS::KMS::Key"} <= kinds
    roles = {lbl.split()[0] for t, rtype, lbl, _ in ALL if rtype == "AWS::IAM::Role"}
    every_role = {lid for p in TEMPLATES.glob("*.yaml")
                  for lid, s in load_template(p.read_text())["Resources"].items() if s["Type"] == "AWS::IAM::Role"}
    assert roles == every_role
    # Resolved all the way: no intrinsic function is left for parliament to misread.
    assert not any("Fn::" in json.dumps(doc) or '"Ref"' in json.dumps(doc) for *_, doc in ALL)


def test_lint_catches_unknown_actions_and_resources_that_do_not_fit() -> None:
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:SendMesage", "Resource": "arn:aws:sqs:us-east-1:123456789012:q"},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:s3:::bucket"},
        {"Effect": "Allow", "Action": "dynamodb:GetRecords", "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/t"},
    ]}
    issues = {f.issue for f in lint(bad)}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues
    # The stream suppression does not hide a table ARN given to a stream action.
    assert any(f.issue == "RESOURCE_MISMATCH" and "dynamodb:GetRecords" in json.dumps(f.detail) for f in lint(bad))
    # The key-policy suppression covers only a key policy's administrator statement.
    admin = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT}, "Action": "kms:*", "Resource": "*"}]}
    assert lint(admin, "AWS::KMS::Key") == []
    assert {f.issue for f in lint(admin, "AWS::IAM::Role")} == {"RESOURCE_STAR"}
