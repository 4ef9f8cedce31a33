"""A failed first create can be retried (issue 20 §1).

moto cannot fail a create the way AWS does, nor import resources, so the rules are asserted on
the template and the IMPORT change set; detection of leftovers and the protection update run
against a moto server.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.cli import first_create, stacks
from gip.cli.deploy import TEMPLATES, deploy
from gip.errors import GipError
from gip.local.gaps import load_template
from tests.deploy_support import RecordingReporter, options

ACCOUNT = "123456789012"
DATA_TYPES = {"AWS::DynamoDB::Table", "AWS::S3::Bucket"}
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def mgmt() -> dict[str, Any]:
    return load_template((TEMPLATES / "management.yaml").read_text())


def client(url: str, name: str) -> Any:
    return boto3.client(name, endpoint_url=url, region_name="us-east-1")


# ------------------------------------------------------------------ the template's rules

def test_no_resource_is_retained_when_its_create_fails(mgmt: dict[str, Any]) -> None:
    # Retain keeps a resource when a failed create rolls back, and the retry then fails
    # with "already exists": every kept resource must be RetainExceptOnCreate.
    kept = {lid: spec for lid, spec in mgmt["Resources"].items() if spec.get("DeletionPolicy", "Delete") != "Delete"}
    assert {"EventsTable", "ResultsBucket"} <= set(kept)
    for lid, spec in kept.items():
        assert spec["DeletionPolicy"] == "RetainExceptOnCreate", lid
        assert spec.get("UpdateReplacePolicy") == "Retain", lid  # a replacement never drops data


def test_deletion_protection_is_off_unless_the_deploy_turns_it_on(mgmt: dict[str, Any]) -> None:
    param = mgmt["Parameters"][first_create.PROTECTION]
    assert param["Default"] == "false" and sorted(param["AllowedValues"]) == ["false", "true"]
    condition = mgmt["Conditions"]["ProtectEventsTable"]
    assert condition == {"Fn::Equals": [{"Ref": first_create.PROTECTION}, "true"]}
    for lid, spec in mgmt["Resources"].items():
        if spec["Type"] == "AWS::DynamoDB::Table" and "DeletionProtectionEnabled" in spec["Properties"]:
            assert spec["Properties"]["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectEventsTable", True, False]}, lid


@pytest.mark.parametrize(("status", "expected"), [
    (None, "false"), ("REVIEW_IN_PROGRESS", "false"), ("ROLLBACK_COMPLETE", "false"),
    ("CREATE_COMPLETE", "true"), ("UPDATE_ROLLBACK_COMPLETE", "true"), ("IMPORT_COMPLETE", "true"),
])
def test_protection_is_never_in_the_creating_change_set(status: str | None, expected: str) -> None:
    assert first_create.protection(status) == expected


def test_import_template_holds_only_the_adopted_resources_retained(mgmt: dict[str, Any]) -> None:
    body = (TEMPLATES / "management.yaml").read_text()
    imported = load_template(first_create.import_template(body, ["EventsTable", "ResultsBucket"]))
    assert set(imported["Resources"]) == {"EventsTable", "ResultsBucket"}
    assert "Outputs" not in imported and imported["Parameters"] == mgmt["Parameters"]
    assert imported["Resources"]["EventsTable"]["Properties"] == mgmt["Resources"]["EventsTable"]["Properties"]
    assert {r["DeletionPolicy"] for r in imported["Resources"].values()} == {"Retain"}
    with pytest.raises(GipError, match="does not declare Nope"):
        first_create.import_template(body, ["EventsTable", "Nope"])


# ------------------------------------------------------------------ against moto

@pytest.fixture(scope="module")
def server(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    import shutil

    root = Path(__file__).resolve().parent.parent
    src = tmp_path_factory.mktemp("src")
    for top in ("gip", "handlers", "schemas", "worker"):
        shutil.copytree(root / top, src / top, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "setup.cfg", src / "setup.cfg")
    return SimpleNamespace(url=moto_server, src=src)


def test_first_deploy_creates_unprotected_then_turns_protection_on(server: SimpleNamespace) -> None:
    reporter = RecordingReporter()
    deploy(options(server.url, prefix="gip-fresh", source_root=server.src), reporter)
    cfn = client(server.url, "cloudformation")
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName="gip-fresh")["Stacks"][0]["Parameters"]}
    assert params[first_create.PROTECTION] == "true"
    # moto applies the property when it creates the table, and ignores it in updates: the
    # table shows what the creating change set asked for.
    table = client(server.url, "dynamodb").describe_table(TableName="gip-fresh-events")["Table"]
    assert table["DeletionProtectionEnabled"] is False
    creating = [i for i, line in enumerate(reporter.infos) if line.startswith("gip-fresh: ") and "(CREATE)" in line]
    protecting = reporter.infos.index("gip-fresh: turning on the event table's deletion protection")
    assert creating and creating[0] < protecting
    again = RecordingReporter()
    deploy(options(server.url, prefix="gip-fresh", source_root=server.src), again)
    assert "gip-fresh: no changes" in again.infos and again.events == []  # stays on, no second update


def orphan(url: str, prefix: str, *, tagged: bool = True, data: bool = False) -> None:
    """What an earlier failed create left behind under Retain: the table and the bucket."""
    ddb, s3 = client(url, "dynamodb"), client(url, "s3")
    tags = [{"Key": "gip:prefix", "Value": prefix}] if tagged else []
    ddb.create_table(TableName=f"{prefix}-events", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], Tags=tags)
    s3.create_bucket(Bucket=f"{prefix}-results-{ACCOUNT}")
    if tagged:
        s3.put_bucket_tagging(Bucket=f"{prefix}-results-{ACCOUNT}", Tagging={"TagSet": tags})
    if data:
        ddb.put_item(TableName=f"{prefix}-events", Item={"pk": {"S": "account-1"}})


def test_empty_leftovers_of_ours_are_named_in_one_line_with_adopt_and_removal(server: SimpleNamespace) -> None:
    orphan(server.url, "gip-orphan")
    reporter = RecordingReporter()
    with pytest.raises(GipError) as stopped:
        deploy(options(server.url, prefix="gip-orphan", source_root=server.src), reporter)
    line = str(stopped.value)
    assert "\n" not in line
    assert line.startswith(f"gip-orphan-events, gip-orphan-results-{ACCOUNT} are left from an earlier failed create")
    assert "--adopt" in line and "aws dynamodb delete-table --table-name gip-orphan-events" in line
    assert f"aws s3 rb s3://gip-orphan-results-{ACCOUNT}" in line
    assert stacks.stack_status(client(server.url, "cloudformation"), "gip-orphan") is None  # nothing created


@pytest.mark.parametrize(("tagged", "data", "why"), [
    (True, True, "gip-other-events holds data"),
    (False, False, "gip-other-events is not tagged gip:prefix=gip-other"),
])
def test_leftovers_with_data_or_not_ours_are_never_adopted(
        server: SimpleNamespace, tagged: bool, data: bool, why: str) -> None:
    orphan(server.url, "gip-other", tagged=tagged, data=data)
    try:
        with pytest.raises(GipError) as stopped:
            deploy(options(server.url, prefix="gip-other", adopt=True, source_root=server.src), RecordingReporter())
        assert why in str(stopped.value) and "--adopt" not in str(stopped.value)
    finally:
        client(server.url, "dynamodb").delete_table(TableName="gip-other-events")
        client(server.url, "s3").delete_bucket(Bucket=f"gip-other-results-{ACCOUNT}")


class ImportingCfn:
    """moto has no IMPORT change sets: record the one adopt creates, and complete it."""

    def __init__(self) -> None:
        self.created: dict[str, Any] = {}
        self.status = "IMPORT_COMPLETE"

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if not self.created:
            raise _missing(StackName)
        return {"Stacks": [{"StackId": "id", "StackStatus": self.status}]}

    def create_change_set(self, **kwargs: Any) -> dict[str, str]:
        self.created = kwargs
        return {"Id": "cs", "StackId": "id"}

    def describe_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        return {"Status": "CREATE_COMPLETE", "Changes": [
            {"ResourceChange": {"LogicalResourceId": r["LogicalResourceId"], "ResourceType": r["ResourceType"],
                                "Action": "Import"}} for r in self.created["ResourcesToImport"]]}

    def execute_change_set(self, ChangeSetName: str) -> None:
        pass

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": []}


def _missing(name: str) -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError(
        {"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}}, "DescribeStacks")


def test_adopt_imports_the_orphans_by_name_into_a_new_stack() -> None:
    orphans = [first_create.Orphan("EventsTable", "AWS::DynamoDB::Table", {"TableName": "p-events"}, True, True),
               first_create.Orphan("ResultsBucket", "AWS::S3::Bucket", {"BucketName": "p-results-1"}, True, True)]
    assert first_create.verdict(orphans, prefix="p", adopt=True) is None
    cfn, reporter = ImportingCfn(), RecordingReporter()
    first_create.import_orphans(cfn, stack_name="p", body=(TEMPLATES / "management.yaml").read_text(),
                       parameters={"Prefix": "p", first_create.PROTECTION: "false"}, orphans=orphans,
                       tags={"gip:prefix": "p"}, reporter=reporter, sleep=lambda _s: None, poll=0)
    created = cfn.created
    assert created["ChangeSetType"] == "IMPORT"
    assert created["ResourcesToImport"] == [
        {"ResourceType": "AWS::DynamoDB::Table", "LogicalResourceId": "EventsTable",
         "ResourceIdentifier": {"TableName": "p-events"}},
        {"ResourceType": "AWS::S3::Bucket", "LogicalResourceId": "ResultsBucket",
         "ResourceIdentifier": {"BucketName": "p-results-1"}}]
    assert set(load_template(created["TemplateBody"])["Resources"]) == {"EventsTable", "ResultsBucket"}
    assert reporter.infos == ["p: importing p-events, p-results-1"]
