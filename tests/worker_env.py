"""Test helpers for the worker and the sweeper: queues, bucket, accounts, a queued issue."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3

from gip.domain.envelope import Cause, Envelope, issue_stream
from gip.errors import ConcurrencyConflict
from tests.conftest import make_core
from worker.cleaner import Protection, clean
from worker.cleanup import Cleanup
from worker.config import WorkerConfig
from worker.credentials import MemberCredentials
from worker.loop import Worker
from worker.processor import reproduce
from worker.runner import Limits

REGION = "us-east-1"
ROLE = "gip-processing"


def member_ids(n: int, start: int = 0) -> list[str]:
    return [f"{200000000000 + start + i:012d}" for i in range(n)]


def make_stack(endpoint_url: str | None = None, prefix: str = "wk", visibility: int = 30) -> SimpleNamespace:
    """Core tables + issue/cleanup queues + results bucket (moto in-process or server)."""
    core = make_core(endpoint_url, prefix)
    kw: dict[str, Any] = {"region_name": REGION, "endpoint_url": endpoint_url}
    sqs, s3, sts = boto3.client("sqs", **kw), boto3.client("s3", **kw), boto3.client("sts", **kw)
    attrs = {"VisibilityTimeout": str(visibility)}
    issue_q = sqs.create_queue(QueueName=f"{prefix}-issues", Attributes=attrs)["QueueUrl"]
    cleanup_q = sqs.create_queue(QueueName=f"{prefix}-cleanup", Attributes=attrs)["QueueUrl"]
    s3.create_bucket(Bucket=f"{prefix}-results")
    settings = replace(core.settings, issue_queue_url=issue_q, cleanup_queue_url=cleanup_q,
                       results_bucket=f"{prefix}-results", processing_role_name=ROLE,
                       external_id="ext-123", region=REGION)
    return SimpleNamespace(**{**vars(core), "settings": settings}, sqs=sqs, s3=s3, sts=sts, kw=kw)


def register(stack: SimpleNamespace, ids: list[str]) -> None:
    cause = Cause(correlation_id="setup", actor="test")
    for account_id in ids:
        stack.pool.register(account_id, role_arn=f"arn:aws:iam::{account_id}:role/{ROLE}",
                            source="manual", cause=cause)


def queue_issue(stack: SimpleNamespace, body: str, *, repo: str = "octo/demo", number: int = 7,
                send: bool = True) -> Envelope:
    """IssueReceived + IssueQueued, then the EventBridge-shaped message on the issue queue."""
    delivery = f"delivery-{uuid.uuid4()}"  # not random.random(): hypothesis seeds it per example
    cause = Cause(correlation_id=delivery, actor="test")
    data = {"repo": repo, "number": number, "title": "crash", "labels": ["needs-reproduction"],
            "trigger": "labeled", "sender": "maint", "html_url": f"https://github.com/{repo}/issues/{number}",
            "body": body}
    received = stack.issues.receive(delivery_id=delivery, repo=repo, number=number, data=data, cause=cause)
    assert received.appended, received.reason
    queued = stack.issues.record(repo, number, "IssueQueued",
                                 {"run": received.issue.run, "sender": "maint", "permission": "write"},
                                 cause=Cause.from_event(received.event, actor="gatekeeper"))
    if send:
        send_event(stack, stack.settings.issue_queue_url, queued)
    return queued


def send_event(stack: SimpleNamespace, url: str, envelope: Envelope) -> None:
    """What the bus rule does: deliver the envelope as an EventBridge event."""
    event = {"version": "0", "id": envelope["event_id"], "detail-type": envelope["type"],
             "source": stack.settings.prefix, "detail": envelope}
    stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))


def member_credentials(stack: SimpleNamespace):
    """(role ARN, lease) → the member role's AWS_* getter, as the worker builds it. A bare
    account id stands for our role in it (tests that call the factory directly)."""
    def factory(role_arn: str, lease_id: str | None):
        if role_arn.isdigit():
            role_arn = f"arn:aws:iam::{role_arn}:role/{ROLE}"
        return MemberCredentials(stack.sts, role_arn=role_arn,
                                 external_id="ext-123", lease_id=lease_id or "cleanup").get
    return factory


def make_worker(stack: SimpleNamespace, *, processor=reproduce, cleaner=clean, clock=None,
                environ: dict[str, str] | None = None, residue=None, **cfg: Any) -> Worker:
    defaults: dict[str, Any] = {"name": "w1", "poll_wait_s": 0, "heartbeat_s": 30, "visibility_s": 60,
                                "limits": Limits(timeout_s=20, output_cap=100_000)}
    config = WorkerConfig(settings=stack.settings, **{**defaults, **cfg})
    cleanup = Cleanup(pool=stack.pool, cleaner=cleaner, member_credentials=member_credentials(stack),
                      regions=(REGION,), protection=Protection(prefix=stack.settings.prefix, role_name=ROLE),
                      max_attempts=config.max_attempts, endpoint_url=stack.kw["endpoint_url"],
                      management_account="123456789012", **({"residue": residue} if residue else {}))
    kw: dict[str, Any] = {"clock": clock} if clock else {}
    kw["environ"] = environ or {}  # the worker's secrets: none unless a test plants some
    return Worker(config, sqs=stack.sqs, s3=stack.s3, sts=stack.sts, pool=stack.pool,
                  issues=stack.issues, processor=processor, cleanup=cleanup,
                  rng=random.Random(1), **kw)


def types(stack: SimpleNamespace, stream: str) -> list[str]:
    return [e["type"] for e in stack.store.read(stream)]


def last(stack: SimpleNamespace, stream: str, type_: str) -> Envelope:
    return [e for e in stack.store.read(stream) if e["type"] == type_][-1]


def visible(stack: SimpleNamespace, url: str) -> list[dict[str, Any]]:
    return stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                     AttributeNames=["All"]).get("Messages", [])


ISSUE = issue_stream("octo/demo", 7)


def bulk_register(stack: SimpleNamespace, ids: list[str]) -> None:
    """Register many accounts fast: the same event, reducer and row code as ``Pool.register``,
    written with BatchWriteItem (moto copies the whole table on every TransactWriteItems, which
    makes 1,000 transactional registrations take minutes; the rows are identical)."""
    from gip.domain.envelope import account_stream, new_event
    from gip.domain.pool import count, evolve
    from gip.store.dynamo_rows import COUNTS_PK, account_item
    from gip.store.protocols import prepare

    cause = Cause(correlation_id="setup", actor="test")
    accounts = []
    with stack.tables.events.batch_write() as events, stack.tables.pool.batch_write() as rows:
        for account_id in ids:
            stream = account_stream(account_id)
            data = {"account_id": account_id, "role_arn": f"arn:aws:iam::{account_id}:role/{ROLE}",
                    "source": "manual"}
            (event,) = prepare(stream, 0, [new_event("AccountRegistered", stream=stream, data=data, cause=cause)])
            account = evolve(None, event)
            accounts.append(account)
            events.save(stack.store.item_for(event))
            rows.save(account_item(stack.tables, account, rand=random.random()))
    totals = count(accounts)
    m = stack.tables.pool
    m(COUNTS_PK).update(actions=[getattr(m, k).add(v) for k, v in totals.as_dict().items()])


def bulk_reserve(stack: SimpleNamespace, ids: list[str], *, at: Any, lease_seconds: int = 900) -> list[str]:
    """Put ``ids`` in RESERVED as of ``at`` through the reducer and row code (see bulk_register)."""
    import uuid
    from datetime import timedelta

    from gip.domain.envelope import account_stream, iso, new_event
    from gip.domain.pool import evolve
    from gip.store.dynamo_rows import account_item
    from gip.store.protocols import prepare

    cause = Cause(correlation_id="setup", actor="test")
    leases = []
    with stack.tables.events.batch_write() as events, stack.tables.pool.batch_write() as rows:
        for account_id in ids:
            state = stack.pool.get(account_id)
            stream = account_stream(account_id)
            lease_id = str(uuid.uuid4())
            data = {"lease_id": lease_id, "issue": f"issue-octo/bulk#{account_id[-4:].lstrip('0') or 1}",
                    "worker": "bulk", "expires_at": iso(at + timedelta(seconds=lease_seconds))}
            (event,) = prepare(stream, state.version,
                                [new_event("AccountReserved", stream=stream, data=data, cause=cause, occurred_at=at)])
            events.save(stack.store.item_for(event))
            rows.save(account_item(stack.tables, evolve(state, event), rand=random.random()))
            leases.append(lease_id)
    return leases


class LosesEveryRace:
    """A store whose account reserves always find the row moved (another worker won)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(self, stream: str, expected_version: int, events: Any, **kw: Any) -> Any:
        if stream.startswith("account-") and events[0]["type"] == "AccountReserved":
            raise ConcurrencyConflict(stream, expected_version, "stream is at version 99")
        return self.store.append(stream, expected_version, events, **kw)


def start_worker_process(stack: SimpleNamespace, endpoint: str, name: str, **extra: str) -> subprocess.Popen:
    """A real ``python -m worker`` against the moto server at ``endpoint``, on ``stack``'s queues."""
    s = stack.settings
    root = Path(__file__).resolve().parent.parent
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        "GIP_PREFIX": s.prefix, "ISSUE_QUEUE_URL": s.issue_queue_url, "CLEANUP_QUEUE_URL": s.cleanup_queue_url,
        "RESULTS_BUCKET": s.results_bucket, "PROCESSING_ROLE_NAME": ROLE, "EXTERNAL_ID": "ext-123",
        "WORKER_NAME": name, "WORKER_POLL_SECONDS": "1", "PYTHONPATH": str(root), **extra,
    }
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 60, what: str = "condition",
               every: float = 0.2, error: type[BaseException] = AssertionError) -> Any:
    """``predicate()``'s first truthy value, asked every ``every`` s; ``error`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise error(f"timed out after {timeout:.0f}s waiting for {what}")
