"""The registrar answers CloudFormation on every path, against a local server playing S3.

The server records each PUT to the "presigned response URL"; the tests assert the exact JSON
CloudFormation would read. The pool is the real core on the in-memory store; the Lambda entry
runs on moto (in process).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.adapters.stack_instance import StackInstances, Verdict
from gip.config import Settings
from gip.domain.envelope import Cause
from gip.services import registrar as registrar_service
from gip.services.issues import Issues
from gip.services.lifecycle import Lifecycle
from gip.services.pool import Pool
from gip.store.models import Tables, create_tables
from handlers import registrar as reg
from tests.conftest import make_memory_core, new_container
from tests.fakes.cloudformation import FakeStackSets

MEMBER = "222233334444"
OTHER = "555566667777"
MANAGEMENT = "111122223333"
STACK = f"arn:aws:cloudformation:us-east-1:{MEMBER}:stack/StackSet-gip-test-member-0a1b/8e5c2a10-1b2c-11ef-9a3b-0a1b2c3d4e5f"


class ResponseBucket:
    """A local HTTP server standing in for the S3 presigned ResponseURL."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []
        self.status = 200
        bucket = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                bucket.puts.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(bucket.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def last(self) -> dict[str, Any]:
        return self.puts[-1]["body"]


@pytest.fixture
def bucket() -> Iterator[ResponseBucket]:
    server = ResponseBucket()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def core() -> tuple[Pool, Issues]:
    """The pool and issues on the in-memory store: the registrar sees only the store's protocols."""
    memory = make_memory_core()
    return memory.pool, memory.issues


@pytest.fixture
def dynamo_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Pool, Issues]]:
    """The same on moto (the Lambda entry builds its service from the environment's tables)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        settings = Settings.for_prefix("gip-test")
        tables = Tables.from_settings(settings)
        create_tables(tables)
        yield Pool.from_settings(settings, tables=tables), Issues.from_settings(settings, tables=tables)


@pytest.fixture
def stacksets() -> FakeStackSets:
    fake = FakeStackSets("gip-test-member")
    fake.deploy(MEMBER, stack_id=STACK)
    return fake


@pytest.fixture
def registrar(core: tuple[Pool, Issues], stacksets: FakeStackSets) -> registrar_service.Registrar:
    pool, issues = core
    lifecycle = Lifecycle(pool, issues, None)
    return registrar_service.Registrar(pool, instances=StackInstances(stacksets, stack_set="gip-test-member"),
                         role_name="gip-test-processing", management_account_id=MANAGEMENT,
                         deregister=lifecycle.deregister_account, extra_hosts=("127.0.0.1",))


class Confirming:
    """An instance check that confirms everything (tests about other paths)."""

    def check(self, request_type: str, *, account: str, stack_id: str) -> Verdict:
        return Verdict(True, "confirmed by the test")


def request(bucket: ResponseBucket, request_type: str = "Create", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": f"arn:aws:sns:us-east-1:{MANAGEMENT}:gip-registrar",
        "ResponseURL": f"{bucket.url}/cfn-response?X-Amz-Signature=abc",
        "StackId": STACK,
        "RequestId": f"req-{request_type.lower()}-{len(bucket.puts)}",
        "ResourceType": "Custom::PoolRegistration",
        "LogicalResourceId": "PoolRegistration",
        "ResourceProperties": {"ServiceToken": f"arn:aws:sns:us-east-1:{MANAGEMENT}:gip-registrar",
                               "AccountId": MEMBER,
                               "RoleArn": f"arn:aws:iam::{MEMBER}:role/gip-test-processing"},
    }
    base.update(overrides)
    return base


def sns(payload: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(payload)}}]}


def account_events(pool: Pool, account_id: str) -> list[str]:
    return [e["type"] for e in pool.store.read(f"account-{account_id}")]


def test_create_registers_the_account_and_answers_success(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                          core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    req = request(bucket)
    registrar.handle(req)

    assert len(bucket.puts) == 1
    assert bucket.puts[0]["path"] == "/cfn-response?X-Amz-Signature=abc"
    assert bucket.puts[0]["headers"].get("Content-Type", "") == ""
    assert bucket.last == {
        "Status": "SUCCESS", "Reason": "", "PhysicalResourceId": f"gip-pool-account-{MEMBER}",
        "StackId": STACK, "RequestId": req["RequestId"], "LogicalResourceId": "PoolRegistration",
        "NoEcho": False, "Data": {"AccountId": MEMBER, "Registered": "new"},
    }
    account = pool.get(MEMBER)
    assert account is not None and account.status == "AVAILABLE" and account.source == "stackset"
    assert account.role_arn == f"arn:aws:iam::{MEMBER}:role/gip-test-processing"


def test_repeated_create_succeeds_without_a_second_registration(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                                core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket))

    assert [p["body"]["Status"] for p in bucket.puts] == ["SUCCESS", "SUCCESS"]
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{MEMBER}"
    assert bucket.last["Data"]["Registered"] == "already"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def test_update_is_a_noop_that_keeps_the_physical_id(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                     core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket, "Update", PhysicalResourceId=f"gip-pool-account-{MEMBER}",
                             OldResourceProperties={"AccountId": MEMBER}))

    assert bucket.last["Status"] == "SUCCESS"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{MEMBER}"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def test_delete_deregisters_the_account(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                        core: tuple[Pool, Issues], stacksets: FakeStackSets) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    stacksets.start_delete(MEMBER)
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))

    assert bucket.last["Status"] == "SUCCESS"
    assert bucket.last["Data"] == {"AccountId": MEMBER, "Deregistered": "new"}
    account = pool.get(MEMBER)
    assert account is not None and account.status == "DEREGISTERED" and account.reason == "removed"
    assert pool.counts().usable == 0


def test_delete_of_a_gone_instance_deregisters(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                               core: tuple[Pool, Issues], stacksets: FakeStackSets) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    stacksets.finish_delete(MEMBER)  # e.g. the answer is a retry after the instance went
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))
    assert bucket.last["Status"] == "SUCCESS"
    assert pool.get(MEMBER).status == "DEREGISTERED"  # type: ignore[union-attr]


def test_a_forged_delete_for_a_healthy_instance_changes_nothing_and_logs_one_line(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, core: tuple[Pool, Issues],
        caplog: pytest.LogCaptureFixture) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    caplog.clear()
    with caplog.at_level("WARNING", logger="gip.services.registrar"):
        registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))

    assert bucket.last["Status"] == "FAILED"
    assert "not confirmed by the StackSet" in bucket.last["Reason"]
    assert "not being deleted (last operation: CREATE SUCCEEDED)" in bucket.last["Reason"]
    assert pool.get(MEMBER).status == "AVAILABLE"  # type: ignore[union-attr]
    assert account_events(pool, MEMBER) == ["AccountRegistered"]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"registrar refused Delete for account {MEMBER}") and "pool is unchanged" in line
    assert "\n" not in line


def test_a_delete_naming_another_stack_of_the_account_changes_nothing(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, core: tuple[Pool, Issues],
        stacksets: FakeStackSets) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    stacksets.start_delete(MEMBER)  # even while our instance is being deleted
    forged = STACK.replace("StackSet-gip-test-member-0a1b", "my-own-stack")
    registrar.handle(request(bucket, "Delete", StackId=forged, PhysicalResourceId=f"gip-pool-account-{MEMBER}"))
    assert bucket.last["Status"] == "FAILED" and "another stack" in bucket.last["Reason"]
    assert pool.get(MEMBER).status == "AVAILABLE"  # type: ignore[union-attr]


def test_a_create_without_a_stack_instance_registers_nothing(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    stack = STACK.replace(MEMBER, OTHER)
    registrar.handle(request(bucket, StackId=stack, ResourceProperties={"AccountId": OTHER}))
    assert bucket.last["Status"] == "FAILED"
    assert bucket.last["Reason"] == ("not confirmed by the StackSet: "
                                     "no stack instance of the StackSet for the account")
    assert pool.accounts() == []


def test_the_check_asks_our_stackset_for_the_stacks_account_and_region(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, stacksets: FakeStackSets) -> None:
    registrar.handle(request(bucket))
    [(call, args)] = stacksets.calls
    assert call == "ListStackInstances"
    assert args == {"StackSetName": "gip-test-member", "StackInstanceAccount": MEMBER,
                    "StackInstanceRegion": "us-east-1", "CallAs": "SELF"}


def test_a_deregistered_account_rejoins_through_the_stackset(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, core: tuple[Pool, Issues],
        stacksets: FakeStackSets) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    stacksets.start_delete(MEMBER)
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))
    stacksets.finish_delete(MEMBER)
    assert pool.counts().deregistered == 1

    new_stack = stacksets.deploy(MEMBER, status="RUNNING")  # the StackSet deploys it again
    registrar.handle(request(bucket, StackId=new_stack))

    assert bucket.last["Status"] == "SUCCESS" and bucket.last["Data"]["Registered"] == "new"
    assert pool.get(MEMBER).status == "AVAILABLE"  # type: ignore[union-attr]
    assert account_events(pool, MEMBER) == ["AccountRegistered", "AccountDeregistered", "AccountRegistered"]
    counts = pool.counts()
    assert (counts.usable, counts.deregistered, counts.registered) == (1, 0, 1)


def test_delete_after_a_failed_create_is_answered_without_touching_the_pool(
        bucket: ResponseBucket, registrar: registrar_service.Registrar, core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket, ResourceProperties={"AccountId": OTHER}))
    failed_id = bucket.last["PhysicalResourceId"]
    assert bucket.last["Status"] == "FAILED" and failed_id.startswith("gip-pool-failed-")

    registrar.handle(request(bucket, "Delete", PhysicalResourceId=failed_id))
    assert bucket.last["Status"] == "SUCCESS" and bucket.last["PhysicalResourceId"] == failed_id
    assert pool.accounts() == []


def test_a_member_cannot_register_another_account(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                  core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket, ResourceProperties={"AccountId": OTHER}))
    assert bucket.last["Status"] == "FAILED"
    assert OTHER in bucket.last["Reason"]
    registrar.handle(request(bucket, ResourceProperties={
        "AccountId": MEMBER, "RoleArn": f"arn:aws:iam::{OTHER}:role/gip-test-processing"}))
    assert bucket.last["Status"] == "FAILED" and "RoleArn" in bucket.last["Reason"]
    assert pool.accounts() == []


def test_a_member_cannot_deregister_another_account(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                    core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    pool.register(OTHER, role_arn=f"arn:aws:iam::{OTHER}:role/r", source="manual",
                  cause=Cause(correlation_id="t", actor="test"))
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{OTHER}"))
    assert bucket.last["Status"] == "FAILED"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{OTHER}"
    assert pool.get(OTHER).status == "AVAILABLE"  # type: ignore[union-attr]


def test_the_management_account_is_never_registered(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                     core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    stack = STACK.replace(MEMBER, MANAGEMENT)
    registrar.handle(request(bucket, StackId=stack, ResourceProperties={"AccountId": MANAGEMENT}))
    assert bucket.last["Status"] == "FAILED" and "management" in bucket.last["Reason"]
    assert pool.accounts() == []


def test_a_handler_exception_is_answered_failed_with_a_reason(bucket: ResponseBucket, core: tuple[Pool, Issues]) -> None:
    class BrokenPool:
        def register(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("table is on fire")

        def deregister(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("table is on fire")

        def get(self, account_id: str) -> Any:
            return None

    registrar = registrar_service.Registrar(BrokenPool(), instances=Confirming(), role_name="r", extra_hosts=("127.0.0.1",))
    req = request(bucket)
    registrar.handle(req)
    assert bucket.last["Status"] == "FAILED"
    assert bucket.last["Reason"] == "internal error: RuntimeError: table is on fire"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-failed-{req['RequestId']}"
    assert bucket.last["RequestId"] == req["RequestId"] and bucket.last["StackId"] == STACK

    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))
    assert bucket.last["Status"] == "FAILED"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{MEMBER}"


def test_a_malformed_request_with_a_response_url_is_still_answered(bucket: ResponseBucket,
                                                                   registrar: registrar_service.Registrar) -> None:
    payload = request(bucket)
    del payload["LogicalResourceId"]
    registrar.handle(payload)
    assert bucket.last["Status"] == "FAILED"
    assert "LogicalResourceId" in bucket.last["Reason"]
    assert bucket.last["RequestId"] == payload["RequestId"]


def test_sns_event_through_the_lambda_entry_point(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                  core: tuple[Pool, Issues], monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = core
    monkeypatch.setattr(reg, "_service", lambda arn: registrar)
    result = reg.lambda_handler(sns(request(bucket)), None)
    assert result == {"answered": 1, "received": 1}
    assert bucket.last["Status"] == "SUCCESS"
    assert pool.get(MEMBER) is not None


def test_a_response_url_that_is_not_s3_is_never_called(bucket: ResponseBucket, core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    strict = registrar_service.Registrar(pool, instances=Confirming(), role_name="gip-test-processing")  # no test host allowed
    strict.handle(request(bucket))
    assert bucket.puts == []


def test_an_unreachable_response_url_raises_so_lambda_retries(bucket: ResponseBucket, registrar: registrar_service.Registrar,
                                                              core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    bucket.status = 403
    with pytest.raises(registrar_service.AwsError, match="403"):
        registrar.handle(request(bucket))
    bucket.status = 200
    registrar.handle(request(bucket))  # the retry: idempotent
    assert bucket.last["Data"]["Registered"] == "already"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def moto_stackset_member(name: str) -> tuple[str, str]:
    """On moto: an Organization, an OU with one new account, and a service-managed StackSet
    deployed to the OU. Returns (account id, the StackId of its instance)."""
    orgs = boto3.client("organizations", region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    root = orgs.list_roots()["Roots"][0]["Id"]
    ou = orgs.create_organizational_unit(ParentId=root, Name="pool")["OrganizationalUnit"]["Id"]
    account = orgs.create_account(AccountName="sandbox", Email="s@example.com")["CreateAccountStatus"]["AccountId"]
    orgs.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    cfn.create_stack_set(StackSetName=name, PermissionModel="SERVICE_MANAGED",
                         AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
                         TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}')
    cfn.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [ou]},
                               Regions=["us-east-1"])
    [summary] = cfn.list_stack_instances(StackSetName=name)["Summaries"]
    return account, summary["StackId"]


def test_lambda_entry_checks_the_stackset_on_moto(bucket: ResponseBucket, dynamo_core: tuple[Pool, Issues],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = dynamo_core
    new_container(monkeypatch, reg)
    monkeypatch.setenv("GIP_PREFIX", "gip-test")
    monkeypatch.setenv("CFN_RESPONSE_EXTRA_HOSTS", "127.0.0.1")
    context = SimpleNamespace(invoked_function_arn=f"arn:aws:lambda:us-east-1:{MANAGEMENT}:function:gip-registrar")
    account, stack_id = moto_stackset_member("gip-test-member")

    # An account with no instance of our StackSet is refused, whatever its message says.
    reg.handler(sns(request(bucket)), context)
    assert bucket.last["Status"] == "FAILED" and "no stack instance" in bucket.last["Reason"]
    assert pool.get(MEMBER) is None

    props = {"AccountId": account, "RoleArn": f"arn:aws:iam::{account}:role/gip-test-processing"}
    reg.handler(sns(request(bucket, StackId=stack_id, ResourceProperties=props)), context)
    assert bucket.last["Status"] == "SUCCESS", bucket.last["Reason"]
    assert pool.get(account).status == "AVAILABLE"  # type: ignore[union-attr]

    # moto finishes every StackSet operation at once: a Delete of a live instance is forged.
    reg.handler(sns(request(bucket, "Delete", StackId=stack_id, PhysicalResourceId=f"gip-pool-account-{account}")),
                context)
    assert bucket.last["Status"] == "FAILED" and "not being deleted" in bucket.last["Reason"]
    assert pool.get(account).status == "AVAILABLE"  # type: ignore[union-attr]

    management_stack = STACK.replace(MEMBER, MANAGEMENT)
    reg.handler(sns(request(bucket, StackId=management_stack, ResourceProperties={})), context)
    assert bucket.last["Status"] == "FAILED" and "management" in bucket.last["Reason"]


# ---------------------------------------------------------------- the template's side of trust
# moto does not enforce topic policies (DESIGN, moto notes): the policy is read from the template.

def _management() -> dict[str, Any]:
    from pathlib import Path

    from gip.local.gaps import load_template

    return load_template((Path(__file__).resolve().parent.parent / "templates" / "management.yaml").read_text())


def test_only_the_stackset_execution_role_in_the_org_may_publish_to_the_registrar_topic() -> None:
    resources = _management()["Resources"]
    [policy] = [r["Properties"] for r in resources.values()
                if r["Type"] == "AWS::SNS::TopicPolicy" and r["Properties"]["Topics"] == [{"Ref": "RegistrarTopic"}]]
    statements = policy["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows, "the topic must admit the StackSet"
    for statement in allows:  # every Allow is narrowed by both conditions, none is org-wide
        condition = statement["Condition"]
        assert condition["StringEquals"]["aws:PrincipalOrgID"] == {"Ref": "OrgId"}
        arns = [a["Fn::Sub"] for a in condition["ArnLike"]["aws:PrincipalArn"]]
        assert arns == ["arn:${AWS::Partition}:iam::*:role/stacksets-exec-*",
                        "arn:${AWS::Partition}:iam::*:role/aws-service-role/stacksets.amazonaws.com/"
                        "AWSServiceRoleForCloudFormationStackSetsOrgMember"]
        assert set(condition) == {"StringEquals", "ArnLike"}


def test_the_registrar_may_read_only_our_stacksets_instances() -> None:
    resources = _management()["Resources"]
    env = resources["RegistrarFunction"]["Properties"]["Environment"]["Variables"]
    assert env["STACK_SET_NAME"] == {"Fn::Sub": "${Prefix}-member"}
    statements = resources["RegistrarRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    cfn = [s for s in statements if any(str(a).startswith("cloudformation:") for a in s["Action"])]
    assert [sorted(s["Action"]) for s in cfn] == [["cloudformation:DescribeStackSetOperation",
                                                  "cloudformation:ListStackInstances"]]
    assert cfn[0]["Resource"]["Fn::Sub"].endswith(":stackset/${Prefix}-member:*")
