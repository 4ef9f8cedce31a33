"""The no-op shortcut compares what DescribeStacks shows, and destroy waits for ACTIVE (issue 20 §10)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from gip.cli import stacks
from gip.cli.destroy import delete_table
from gip.errors import AwsError
from tests.deploy_support import RecordingReporter

DECLARED = [
    {"ParameterKey": "Prefix", "DefaultValue": "gip", "ParameterType": "String"},
    {"ParameterKey": "OrgId", "ParameterType": "String"},
    {"ParameterKey": "Strikes", "DefaultValue": "2", "ParameterType": "Number"},
    {"ParameterKey": "SubnetIds", "DefaultValue": "", "ParameterType": "List<AWS::EC2::Subnet::Id>"},
]


class LiveStack:
    """An UPDATE_COMPLETE stack as DescribeStacks shows it: defaults filled in."""

    def __init__(self, live: dict[str, str], declared: list[dict[str, Any]] = DECLARED, body: str = "T") -> None:
        self.live, self.declared, self.body = live, declared, body
        self.change_sets = 0

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"StackId": "id", "StackStatus": "UPDATE_COMPLETE",
                            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in self.live.items()]}]}

    def get_template(self, StackName: str, TemplateStage: str) -> dict[str, str]:
        return {"TemplateBody": self.body}

    def get_template_summary(self, StackName: str) -> dict[str, Any]:
        return {"Parameters": self.declared}

    def create_change_set(self, **kwargs: Any) -> dict[str, str]:
        self.change_sets += 1
        return {"Id": "cs", "StackId": "id"}

    def describe_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        return {"Status": "CREATE_COMPLETE", "Changes": []}


def plan(cfn: LiveStack, parameters: dict[str, str], body: str = "T") -> stacks.Plan:
    return stacks.plan(cfn, stack_name="gip", template=stacks.Template(body=body), parameters=parameters,
                       reporter=RecordingReporter(), sleep=lambda _s: None)


LIVE = {"Prefix": "gip", "OrgId": "o-1", "Strikes": "2", "SubnetIds": "subnet-a,subnet-b"}


def test_same_template_and_parameters_with_defaults_left_out_skip_the_change_set() -> None:
    cfn = LiveStack(LIVE)
    result = plan(cfn, {"OrgId": "o-1", "SubnetIds": "subnet-a,subnet-b"})
    assert result.no_changes and cfn.change_sets == 0


def test_moto_style_list_parameters_compare_by_items() -> None:
    cfn = LiveStack({**LIVE, "SubnetIds": "['subnet-a', 'subnet-b']"})
    assert plan(cfn, {"OrgId": "o-1", "SubnetIds": "subnet-a,subnet-b"}).no_changes and cfn.change_sets == 0


@pytest.mark.parametrize(("parameters", "body"), [
    ({"OrgId": "o-2", "SubnetIds": "subnet-a,subnet-b"}, "T"),  # a value changed
    ({"OrgId": "o-1", "Strikes": "3", "SubnetIds": "subnet-a,subnet-b"}, "T"),  # a default overridden
    ({"OrgId": "o-1", "SubnetIds": "subnet-b,subnet-a"}, "T"),  # list order matters to CloudFormation
    ({"OrgId": "o-1", "SubnetIds": "subnet-a,subnet-b"}, "T2"),  # the template changed
])
def test_any_difference_goes_through_a_change_set(parameters: dict[str, str], body: str) -> None:
    cfn = LiveStack(LIVE)
    assert not plan(cfn, parameters, body).no_changes and cfn.change_sets == 1


def test_a_noecho_parameter_cannot_be_compared_so_a_change_set_decides() -> None:
    declared = [*DECLARED, {"ParameterKey": "Secret", "NoEcho": True, "ParameterType": "String"}]
    cfn = LiveStack({**LIVE, "Secret": "****"}, declared)
    assert stacks.effective_parameters({"Secret": "x"}, declared) is None
    plan(cfn, {"OrgId": "o-1", "SubnetIds": "subnet-a,subnet-b", "Secret": "x"})
    assert cfn.change_sets == 1


class UpdatingTable:
    """DescribeTable answers UPDATING ``busy`` times after UpdateTable, then ACTIVE."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls: list[str] = []

    def update_table(self, **kw: Any) -> None:
        self.calls.append("update")

    def describe_table(self, TableName: str) -> dict[str, Any]:
        status = "UPDATING" if self.busy > 0 else "ACTIVE"
        self.busy -= 1
        self.calls.append(status)
        return {"Table": {"TableStatus": status}}

    def delete_table(self, TableName: str) -> None:
        if self.calls[-1] != "ACTIVE":
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ResourceInUseException", "Message": "table is being updated"}}, "DeleteTable")
        self.calls.append("delete")


def test_destroy_deletes_the_table_only_once_it_is_active_again() -> None:
    ddb, slept, reporter = UpdatingTable(busy=2), [], RecordingReporter()
    delete_table(ddb, "gip-events", reporter, sleep=slept.append, poll=5.0)
    assert ddb.calls == ["update", "UPDATING", "UPDATING", "ACTIVE", "delete"]
    assert slept == [5.0, 5.0] and reporter.infos == ["deleted table gip-events"]


def test_a_table_that_stays_busy_stops_destroy_in_one_line() -> None:
    ddb = UpdatingTable(busy=10)
    with pytest.raises(AwsError) as stopped:
        delete_table(ddb, "gip-events", RecordingReporter(), sleep=lambda _s: None, poll=0, attempts=3)
    assert str(stopped.value) == "table gip-events did not become ACTIVE after 3 checks; run destroy again later"
    assert "delete" not in ddb.calls
