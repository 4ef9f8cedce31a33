"""The pool's scope: --ou required on the first deploy, then remembered with the regions and
the guardrails choice on the management stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.cli import pool_scope
from gip.cli.guardrails import Choice
from gip.errors import UsageError

OU = "ou-ab12-cdef3456"


def resolve(**kw: Any) -> pool_scope.Scope:
    args: dict[str, Any] = {"ou_ids": [], "regions": [], "guardrails": None, "remembered": {},
                            "region": "eu-west-1", "local": False}
    return pool_scope.resolve(**{**args, **kw})


def test_the_first_deploy_without_ou_is_refused_with_the_reason() -> None:
    with pytest.raises(UsageError) as exc:
        resolve()
    line = str(exc.value)
    assert line.startswith("--ou is required on the first deploy") and "\n" not in line
    assert "every account in the Organization" in line


def test_a_later_deploy_reuses_the_ous_regions_and_guardrails_of_the_stack() -> None:
    remembered = {"TargetOuIds": f"{OU},ou-zz99-abcdefgh", "AllowedRegions": "eu-west-1,us-east-1",
                  "Guardrails": "none"}
    scope = resolve(remembered=remembered)
    assert scope == pool_scope.Scope((OU, "ou-zz99-abcdefgh"), ("eu-west-1", "us-east-1"), Choice("none"))


def test_flags_win_over_what_was_remembered() -> None:
    remembered = {"TargetOuIds": OU, "AllowedRegions": "eu-west-1,us-east-1", "Guardrails": "none"}
    scope = resolve(ou_ids=["r-ab12"], regions=["eu-west-1"], guardrails="p-abcd1234", remembered=remembered)
    assert scope == pool_scope.Scope(("r-ab12",), ("eu-west-1",), Choice("own", ("p-abcd1234",)))


def test_defaults_are_the_deploy_region_and_our_guardrails() -> None:
    assert resolve(ou_ids=[OU]) == pool_scope.Scope((OU,), ("eu-west-1",), Choice("ours"))
    # A stack from before these parameters existed: empty values fall back to the defaults.
    assert resolve(ou_ids=[OU], remembered={"TargetOuIds": ""}).regions == ("eu-west-1",)


def test_local_mode_needs_no_ou() -> None:
    assert resolve(local=True).ou_ids == ()


@pytest.mark.parametrize(("regions", "message"), [
    (["us-east-1"], "--regions must include the deploy region eu-west-1"),
    (["eu-west-1", "mars-1"], "--regions takes region names like us-east-1, got 'mars-1'"),
])
def test_bad_regions_are_one_line(regions: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(ou_ids=[OU], regions=regions)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def test_remembered_reads_the_management_stack_parameters(aws: None) -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    assert pool_scope.remembered(cfn, "gip") == {}
    template = {"Parameters": {k: {"Type": "String", "Default": ""} for k in ("TargetOuIds", "AllowedRegions", "Guardrails")},
                "Resources": {"T": {"Type": "AWS::SNS::Topic"}}}
    cfn.create_stack(StackName="gip", TemplateBody=json.dumps(template), Parameters=[
        {"ParameterKey": "TargetOuIds", "ParameterValue": OU},
        {"ParameterKey": "AllowedRegions", "ParameterValue": "us-east-1"},
        {"ParameterKey": "Guardrails", "ParameterValue": "default"}])
    assert pool_scope.remembered(cfn, "gip") == {"TargetOuIds": OU, "AllowedRegions": "us-east-1",
                                                 "Guardrails": "default"}


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> Any:
    from gip.cli import main as cli
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k == "deploy"})
    return cli.main


def test_first_deploy_without_ou_exits_2_with_one_line(aws: None, main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--org", "o-abcdefghij", "--region", "us-east-1", "--no-deps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ou is required on the first deploy")


@pytest.mark.parametrize(("flags", "message"), [
    (["--guardrails", "p-1"], "error: --guardrails takes none or SCP ids"),
    (["--regions", "us-east-1,Mars"], "error: --regions takes region names like us-east-1, got 'Mars'"),
])
def test_bad_scope_flags_exit_2_before_any_aws_call(main: Any, capsys: pytest.CaptureFixture[str],
                                                    flags: list[str], message: str) -> None:
    assert main(["--org", "o-abcdefghij", "--region", "us-east-1", "--ou", OU, "--endpoint-url",
                 "http://127.0.0.1:9", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_the_management_stack_keeps_the_three_remembered_parameters() -> None:
    from pathlib import Path

    from gip.local.gaps import load_template

    template = load_template((Path(__file__).resolve().parent.parent / "templates" / "management.yaml").read_text())
    for key in ("TargetOuIds", "AllowedRegions", "Guardrails"):
        assert template["Parameters"][key]["Type"] == "String"
        assert "${" + key + "}" in template["Outputs"]["PoolScope"]["Value"]["Fn::Sub"]
