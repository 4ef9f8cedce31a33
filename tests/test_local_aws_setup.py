"""Local mode's Organization: member accounts in a pool OU that carries the guardrails SCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.cli import guardrails
from gip.domain.envelope import ACCOUNT_RE
from gip.local import account_ids, aws_setup


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def client(name: str) -> Any:
    return boto3.client(name, region_name="eu-west-1")


def member_client(account_id: str, service: str) -> Any:
    creds = client("sts").assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
                                      RoleSessionName="test")["Credentials"]
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def test_members_join_a_pool_ou_guarded_by_the_scp(aws: None) -> None:
    members = aws_setup.create_organization(client, accounts=2, prefix="gip", member_client=member_client,
                                            trust_policy=json.dumps({"Version": "2012-10-17", "Statement": []}),
                                            role_name="gip-processing")
    orgs = client("organizations")
    root = orgs.list_roots()["Roots"][0]["Id"]
    [pool] = orgs.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]
    assert pool["Name"] == "gip-pool"
    in_pool = {a["Id"] for a in orgs.list_accounts_for_parent(ParentId=pool["Id"])["Accounts"]}
    assert in_pool == set(members) and len(members) == 2

    [policy] = [p for p in orgs.list_policies_for_target(TargetId=pool["Id"], Filter="SERVICE_CONTROL_POLICY")["Policies"]
                if p["Name"] == "gip-guardrails"]
    content = json.loads(orgs.describe_policy(PolicyId=policy["Id"])["Policy"]["Content"])
    management = client("sts").get_caller_identity()["Account"]
    assert content == guardrails.document(prefix="gip", regions=["eu-west-1"],
                                          registrar_topic_arn=f"arn:aws:sns:eu-west-1:{management}:gip-registrar")
    for account in members:
        role = member_client(account, "iam").get_role(RoleName="gip-processing")["Role"]
        assert role["Arn"] == f"arn:aws:iam::{account}:role/gip-processing"

    # Against the same endpoint again: the same OU, still one attachment.
    aws_setup.create_organization(client, accounts=1, prefix="gip", member_client=member_client,
                                  trust_policy=json.dumps({"Version": "2012-10-17", "Statement": []}),
                                  role_name="gip-processing")
    assert len(orgs.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]) == 1
    assert [t["TargetId"] for t in orgs.list_targets_for_policy(PolicyId=policy["Id"])["Targets"]] == [pool["Id"]]


def test_members_get_the_same_ids_on_every_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 gap: moto draws random account ids; member n of a prefix gets one id on each
    start (a fresh moto each time), so a restored log's accounts are still the Organization's."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    runs = []
    for _ in range(2):
        with mock_aws():
            members = aws_setup.create_organization(
                client, accounts=3, prefix="gip", member_client=member_client, role_name="gip-processing",
                trust_policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
            listed = {a["Id"]: a["Name"] for a in client("organizations").list_accounts()["Accounts"]}
        runs.append(members)
        assert [listed[m] for m in members] == ["gip-sandbox-1", "gip-sandbox-2", "gip-sandbox-3"]
    assert runs[0] == runs[1] == [account_ids.member_id("gip", n) for n in (1, 2, 3)]
    assert len(set(runs[0])) == 3 and all(ACCOUNT_RE.match(m) for m in runs[0])
    assert account_ids.member_id("other", 1) != runs[0][0]  # another prefix, other ids


def test_outside_the_patch_moto_ids_are_random_again(aws: None) -> None:
    orgs = client("organizations")
    orgs.create_organization(FeatureSet="ALL")
    with account_ids.fixed_account_id("912345678901"):
        fixed = orgs.create_account(AccountName="a", Email="a@example.com")["CreateAccountStatus"]["AccountId"]
    later = orgs.create_account(AccountName="b", Email="b@example.com")["CreateAccountStatus"]["AccountId"]
    assert fixed == "912345678901" and later != fixed
