"""The registrar answers CloudFormation on every path, against a local server playing S3.

The server records each PUT to the "presigned response URL"; the tests assert the exact JSON
CloudFormation would read. The pool is the real core on moto (in process).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

from handlers import registrar as reg
from handlers.core.config import Settings
from handlers.core.envelope import Cause
from handlers.core.issue_service import Issues
from handlers.core.models import Tables, create_tables
from handlers.core.pool_service import Pool
from handlers.org_events import Lifecycle

MEMBER = "222233334444"
OTHER = "555566667777"
MANAGEMENT = "111122223333"
STACK = f"arn:aws:cloudformation:us-east-1:{MEMBER}:stack/StackSet-gip-member-0a1b/8e5c2a10-1b2c-11ef-9a3b-0a1b2c3d4e5f"


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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

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
def core(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Pool, Issues]]:
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
def registrar(core: tuple[Pool, Issues]) -> reg.Registrar:
    pool, issues = core
    lifecycle = Lifecycle(pool, issues, None)
    return reg.Registrar(pool, role_name="gip-test-processing", management_account_id=MANAGEMENT,
                         deregister=lifecycle.deregister_account, extra_hosts=("127.0.0.1",))


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


def test_create_registers_the_account_and_answers_success(bucket: ResponseBucket, registrar: reg.Registrar,
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


def test_repeated_create_succeeds_without_a_second_registration(bucket: ResponseBucket, registrar: reg.Registrar,
                                                                core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket))

    assert [p["body"]["Status"] for p in bucket.puts] == ["SUCCESS", "SUCCESS"]
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{MEMBER}"
    assert bucket.last["Data"]["Registered"] == "already"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def test_update_is_a_noop_that_keeps_the_physical_id(bucket: ResponseBucket, registrar: reg.Registrar,
                                                     core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket, "Update", PhysicalResourceId=f"gip-pool-account-{MEMBER}",
                             OldResourceProperties={"AccountId": MEMBER}))

    assert bucket.last["Status"] == "SUCCESS"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{MEMBER}"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def test_delete_deregisters_the_account(bucket: ResponseBucket, registrar: reg.Registrar,
                                        core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))

    assert bucket.last["Status"] == "SUCCESS"
    assert bucket.last["Data"] == {"AccountId": MEMBER, "Deregistered": "new"}
    account = pool.get(MEMBER)
    assert account is not None and account.status == "DEREGISTERED" and account.reason == "removed"
    assert pool.counts().usable == 0


def test_a_deregistered_account_cannot_come_back_through_create(bucket: ResponseBucket, registrar: reg.Registrar,
                                                                core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket))
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{MEMBER}"))
    registrar.handle(request(bucket))

    assert bucket.last["Status"] == "FAILED"
    assert "deregistered" in bucket.last["Reason"]
    assert pool.get(MEMBER).status == "DEREGISTERED"  # type: ignore[union-attr]
    assert account_events(pool, MEMBER) == ["AccountRegistered", "AccountDeregistered"]


def test_delete_after_a_failed_create_is_answered_without_touching_the_pool(
        bucket: ResponseBucket, registrar: reg.Registrar, core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket, ResourceProperties={"AccountId": OTHER}))
    failed_id = bucket.last["PhysicalResourceId"]
    assert bucket.last["Status"] == "FAILED" and failed_id.startswith("gip-pool-failed-")

    registrar.handle(request(bucket, "Delete", PhysicalResourceId=failed_id))
    assert bucket.last["Status"] == "SUCCESS" and bucket.last["PhysicalResourceId"] == failed_id
    assert pool.accounts() == []


def test_a_member_cannot_register_another_account(bucket: ResponseBucket, registrar: reg.Registrar,
                                                  core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    registrar.handle(request(bucket, ResourceProperties={"AccountId": OTHER}))
    assert bucket.last["Status"] == "FAILED"
    assert OTHER in bucket.last["Reason"]
    registrar.handle(request(bucket, ResourceProperties={
        "AccountId": MEMBER, "RoleArn": f"arn:aws:iam::{OTHER}:role/gip-test-processing"}))
    assert bucket.last["Status"] == "FAILED" and "RoleArn" in bucket.last["Reason"]
    assert pool.accounts() == []


def test_a_member_cannot_deregister_another_account(bucket: ResponseBucket, registrar: reg.Registrar,
                                                    core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    pool.register(OTHER, role_arn=f"arn:aws:iam::{OTHER}:role/r", source="manual",
                  cause=Cause(correlation_id="t", actor="test"))
    registrar.handle(request(bucket, "Delete", PhysicalResourceId=f"gip-pool-account-{OTHER}"))
    assert bucket.last["Status"] == "FAILED"
    assert bucket.last["PhysicalResourceId"] == f"gip-pool-account-{OTHER}"
    assert pool.get(OTHER).status == "AVAILABLE"  # type: ignore[union-attr]


def test_the_management_account_is_never_registered(bucket: ResponseBucket, registrar: reg.Registrar,
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

    registrar = reg.Registrar(BrokenPool(), role_name="r", extra_hosts=("127.0.0.1",))
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
                                                                   registrar: reg.Registrar) -> None:
    payload = request(bucket)
    del payload["LogicalResourceId"]
    registrar.handle(payload)
    assert bucket.last["Status"] == "FAILED"
    assert "LogicalResourceId" in bucket.last["Reason"]
    assert bucket.last["RequestId"] == payload["RequestId"]


def test_sns_event_through_the_lambda_entry_point(bucket: ResponseBucket, registrar: reg.Registrar,
                                                  core: tuple[Pool, Issues], monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = core
    monkeypatch.setattr(reg, "_REGISTRAR", registrar)
    result = reg.lambda_handler(sns(request(bucket)), None)
    assert result == {"answered": 1, "received": 1}
    assert bucket.last["Status"] == "SUCCESS"
    assert pool.get(MEMBER) is not None


def test_a_response_url_that_is_not_s3_is_never_called(bucket: ResponseBucket, core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    strict = reg.Registrar(pool, role_name="gip-test-processing")  # no test host allowed
    strict.handle(request(bucket))
    assert bucket.puts == []


def test_an_unreachable_response_url_raises_so_lambda_retries(bucket: ResponseBucket, registrar: reg.Registrar,
                                                              core: tuple[Pool, Issues]) -> None:
    pool, _ = core
    bucket.status = 403
    with pytest.raises(reg.AwsError, match="403"):
        registrar.handle(request(bucket))
    bucket.status = 200
    registrar.handle(request(bucket))  # the retry: idempotent
    assert bucket.last["Data"]["Registered"] == "already"
    assert account_events(pool, MEMBER) == ["AccountRegistered"]


def test_lambda_entry_builds_from_the_environment(bucket: ResponseBucket, core: tuple[Pool, Issues],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = core
    monkeypatch.setattr(reg, "_REGISTRAR", None)
    monkeypatch.setenv("GIP_PREFIX", "gip-test")
    monkeypatch.setenv("CFN_RESPONSE_EXTRA_HOSTS", "127.0.0.1")
    context = SimpleNamespace(invoked_function_arn=f"arn:aws:lambda:us-east-1:{MANAGEMENT}:function:gip-registrar")

    reg.handler(sns(request(bucket)), context)
    assert bucket.last["Status"] == "SUCCESS" and pool.get(MEMBER) is not None

    management_stack = STACK.replace(MEMBER, MANAGEMENT)
    reg.handler(sns(request(bucket, StackId=management_stack, ResourceProperties={})), context)
    assert bucket.last["Status"] == "FAILED" and "management" in bucket.last["Reason"]
