"""accounts / status / reinstate: pure summaries, then the commands over a moto server."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import boto3
import pytest

from gip.cli.main import main
from gip.cli.pool_cli import failure_rows, pool_summary, queue_rows
from gip.config import Settings
from gip.domain.envelope import Cause
from gip.domain.pool import Account, Counts
from gip.services.issues import Issues
from gip.services.pool import Pool
from gip.store.dynamodb import DynamoEventStore
from gip.store.models import Tables, create_tables

# ---------------------------------------------------------------- pure


def test_pool_summary_counts_by_status_and_checks_the_counts_row() -> None:
    accounts = [Account("1", "AVAILABLE", 1), Account("2", "RESERVED", 2), Account("3", "QUARANTINED", 5)]
    summary = pool_summary(accounts, Counts(usable=2, registered=3, quarantined=1))
    assert summary["by_status"] == {"AVAILABLE": 1, "RESERVED": 1, "CLEANING": 0, "QUARANTINED": 1, "DEREGISTERED": 0}
    assert summary["usable"] == 2 and summary["counts_row_agrees"] is True
    assert pool_summary(accounts, Counts(usable=5))["counts_row_agrees"] is False


def test_failure_rows_put_the_reason_first() -> None:
    event = {"occurred_at": "2026-01-01T00:00:00.000Z", "stream": "account-1", "type": "AccountQuarantined",
             "data": {"reason": "cleanup failed", "attempts": 3, "lease_id": "x"}}
    (row,) = failure_rows([event])  # type: ignore[list-item]
    assert row["detail"] == "cleanup failed (attempts=3)"


def test_queue_rows_find_dlqs_by_redrive_policy_and_flag_messages() -> None:
    queues = {
        "gip-issues": {"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "1",
                       "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:r:1:gip-issues-dead"})},
        "gip-issues-dead": {"ApproximateNumberOfMessages": "2"},
        "gip-cleanup-dlq": {"ApproximateNumberOfMessages": "0"},
    }
    rows = {r["queue"]: r for r in queue_rows(queues)}
    assert rows["gip-issues"]["dlq_for"] is None and rows["gip-issues"]["in_flight"] == 1
    assert rows["gip-issues-dead"]["dlq_for"] == "gip-issues" and rows["gip-issues-dead"]["attention"] == "!"
    assert rows["gip-cleanup-dlq"]["dlq_for"] == "" and rows["gip-cleanup-dlq"]["attention"] == ""


# ---------------------------------------------------------------- moto server

PREFIX = "pc"
A, B, C = "300000000001", "300000000002", "300000000003"


@pytest.fixture(scope="module")
def pool(moto_server: str) -> SimpleNamespace:
    """A available, B reserved for an issue, C quarantined; queues with a DLQ holding 2 messages."""
    settings = Settings.for_prefix(PREFIX, endpoint_url=moto_server, region="us-east-1")
    tables = Tables.from_settings(settings)
    create_tables(tables)
    store = DynamoEventStore(tables)
    p, issues = Pool(store=store), Issues(store=store)
    cause = Cause(correlation_id="d-1", actor="test")
    for account_id in (A, B, C):
        p.register(account_id, role_arn=f"arn:aws:iam::{account_id}:role/p", source="manual", cause=cause)
    issues.receive(delivery_id="d-1", repo="octo/demo", number=3, cause=cause, data={
        "title": "t", "labels": ["needs-reproduction"], "trigger": "labeled", "sender": "m",
        "html_url": "https://github.com/octo/demo/issues/3", "repo": "octo/demo", "number": 3})
    issues.record("octo/demo", 3, "IssueQueued", {"run": 1, "sender": "m", "permission": "write"}, cause=cause)
    issues.record("octo/demo", 3, "IssueProcessingFailed", {"run": 1, "error": "no account", "retryable": True,
                                                             "attempt": 1}, cause=cause)
    # reserve until C is the one leased, then release and quarantine it; then lease B
    for account_id in (C, B):
        while True:
            lease = p.reserve(issue="issue-octo/demo#3", worker="w", cause=cause)
            assert lease is not None
            if lease.account_id == account_id:
                break
            p.release(lease.account_id, lease_id=lease.lease_id, cause=cause)
            p.mark_cleaned(lease.account_id, lease_id=lease.lease_id, removed=[], cause=cause)
        if account_id == C:
            p.release(C, lease_id=lease.lease_id, cause=cause)
            p.quarantine(C, reason="cleanup failed 3 times", attempts=3, cause=cause)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    dlq = sqs.create_queue(QueueName=f"{PREFIX}-issues-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName=f"{PREFIX}-issues", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    return SimpleNamespace(pool=p, store=store)


def cli(endpoint: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--prefix", PREFIX, "--endpoint-url", endpoint, "--region", "us-east-1"])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.server
def test_accounts_shows_the_pool(pool: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = cli(moto_server, "accounts", "--format", "json")
    assert code == 0
    assert {r["account_id"]: r["status"] for r in json.loads(out)} == {A: "AVAILABLE", B: "RESERVED", C: "QUARANTINED"}
    code, out, _ = cli(moto_server, "accounts")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ACCOUNT", "STATUS"] and lines[1].startswith("-")
    status_col = lines[0].index("STATUS")
    assert [line[status_col:].split()[0] for line in lines[2:5]] == ["AVAILABLE", "RESERVED", "QUARANTINED"]
    assert lines[-1] == "(3 accounts: 1 AVAILABLE, 1 RESERVED, 1 QUARANTINED)"


@pytest.mark.server
def test_status_shows_summary_queues_and_recent_failures(pool: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = cli(moto_server, "status", "--format", "json")
    assert code == 0
    status = json.loads(out)
    assert status["pool"]["by_status"]["QUARANTINED"] == 1 and status["pool"]["usable"] == 2
    assert status["pool"]["counts_row_agrees"] is True
    queues = {q["queue"]: q for q in status["queues"]}
    assert queues[f"{PREFIX}-issues-dlq"]["visible"] == 2 and queues[f"{PREFIX}-issues-dlq"]["dlq_for"] == f"{PREFIX}-issues"
    assert sorted(f["type"] for f in status["recent_failures"]) == ["AccountQuarantined", "IssueProcessingFailed"]
    code, out, _ = cli(moto_server, "status")
    lines = [line.split() for line in out.splitlines()]
    assert ["quarantined:", "1"] in lines and ["usable:", "2", "(counts", "row:", "2)"] in lines
    assert any(line.split()[:3] == [f"{PREFIX}-issues-dlq", "2", "!"] for line in out.splitlines())
    assert f"account-{C}" in out and "cleanup failed 3 times" in out


@pytest.mark.server
def test_reinstate_moves_a_quarantined_account_to_cleaning(pool: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = cli(moto_server, "reinstate", C, "--reason", "fixed the SCP")
    assert code == 0 and "QUARANTINED → CLEANING" in out
    assert pool.pool.get(C).status == "CLEANING"
    last = pool.store.read(f"account-{C}")[-1]
    assert last["type"] == "AccountReinstated" and last["data"]["reason"] == "fixed the SCP"
    assert last["data"]["operator"].startswith("operator:")
    assert pool.pool.counts().usable == 3


@pytest.mark.server
def test_reinstate_refuses_in_one_line(pool: SimpleNamespace, moto_server: str) -> None:
    code, _, err = cli(moto_server, "reinstate", A)
    assert code == 1 and err == f"error: account {A} is AVAILABLE, not QUARANTINED: nothing to reinstate\n"
    code, _, err = cli(moto_server, "reinstate", "999999999999")
    assert code == 1 and "not in the pool" in err and err.count("\n") == 1
    code, _, err = cli(moto_server, "reinstate", "12")
    assert code == 2 and err.startswith("error: ACCOUNT must be a 12-digit account id")


@pytest.mark.server
def test_missing_tables_are_one_line_not_a_traceback(moto_server: str) -> None:
    for argv in (["accounts"], ["status"], ["replay", "--since", "1h"], ["replay", "--verify"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--prefix", "absent", "--endpoint-url", moto_server, "--region", "us-east-1"])
        assert code == 1, argv
        assert err.getvalue().startswith("error: the absent-* tables are not there") and err.getvalue().count("\n") == 1


@pytest.mark.server
def test_status_says_degraded_with_the_reasons(pool: SimpleNamespace, moto_server: str) -> None:
    """Issue 14 §3: a DLQ with messages, and records parked by the stream mapping (its on-failure
    destination, the publisher DLQ), each make `status` say degraded and why."""
    code, out, _ = cli(moto_server, "status", "--format", "json")
    health = json.loads(out)["health"]
    assert {k: health[k] for k in ("status", "parked", "dlq", "workers", "reasons", "source")} == {
        "status": "degraded", "parked": 0, "dlq": {f"{PREFIX}-issues-dlq": 2}, "source": "aws",
        "workers": {"live": None, "configured": None},
        "reasons": [f"dead-letter queue {PREFIX}-issues-dlq holds 2 message(s)"]}
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    parked = sqs.create_queue(QueueName=f"{PREFIX}-publisher-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=parked, MessageBody=json.dumps({"requestContext": {"condition": "RetryAttemptsExhausted"}}))
    try:
        code, out, _ = cli(moto_server, "status")
        assert code == 0 and out.splitlines()[:3] == [
            "health: degraded", "  1 record(s) parked after failing (in the publisher DLQ)",
            f"  dead-letter queue {PREFIX}-issues-dlq holds 2 message(s)"]
        assert out.splitlines()[3].startswith("  publisher lag: ")  # IteratorAge: tested below
        assert out.splitlines()[4:7] == [
            "  parked records: 1", "  dead-letter messages: 2", "  live workers: unknown (no ECS service found)"]
        _, lines, _ = cli(moto_server, "status", "--format", "jsonl")
        first = json.loads(lines.splitlines()[0])
        assert first["kind"] == "health" and first["parked"] == 1
    finally:
        sqs.delete_queue(QueueUrl=parked)


@pytest.mark.server
def test_status_reports_the_ecs_services_live_workers(pool: SimpleNamespace, moto_server: str) -> None:
    """Issue 14 §3: a deployed stack's live workers are its ECS service's runningCount; fewer
    than desired is degraded, with the reason (moto's server reports 0 running)."""
    ecs = boto3.client("ecs", endpoint_url=moto_server, region_name="us-east-1")
    ecs.create_cluster(clusterName=f"{PREFIX}-cluster")
    ecs.register_task_definition(family=f"{PREFIX}-worker", containerDefinitions=[
        {"name": "worker", "image": "worker:latest", "memory": 512}])
    ecs.create_service(cluster=f"{PREFIX}-cluster", serviceName=f"{PREFIX}-worker",
                       taskDefinition=f"{PREFIX}-worker", desiredCount=2)
    try:
        code, out, _ = cli(moto_server, "status", "--format", "json")
        health = json.loads(out)["health"]
        assert code == 0 and health["workers"] == {"live": 0, "configured": 2}
        assert "0 of 2 worker(s) alive" in health["reasons"] and health["status"] == "degraded"
        code, out, _ = cli(moto_server, "status")
        assert "  live workers: 0 of 2" in out.splitlines() and "  0 of 2 worker(s) alive" in out.splitlines()
    finally:
        ecs.delete_service(cluster=f"{PREFIX}-cluster", service=f"{PREFIX}-worker", force=True)
        ecs.delete_cluster(cluster=f"{PREFIX}-cluster")
