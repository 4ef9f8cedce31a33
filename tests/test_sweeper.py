"""gip.services.sweeper and handlers.sweeper: stale leases are timed out through the index, O(stale); fresh ones are left alone.

The sweep's decisions run on the in-memory store (``svc``); the worker hand-off, the DynamoDB
read count with 1,000 accounts and the handler run on moto (``stack``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import botocore.client
import pytest
from moto import mock_aws

from gip.domain.envelope import Cause, issue_stream
from gip.domain.pool import AVAILABLE, CLEANING
from gip.errors import IllegalTransition
from gip.services.pool import Pool
from gip.services.sweeper import sweep
from handlers import sweeper
from tests.conftest import new_container
from tests.worker_env import (
    bulk_register,
    bulk_reserve,
    last,
    make_stack,
    make_worker,
    member_ids,
    queue_issue,
    register,
    send_event,
    types,
)
from worker.processor import Outcome

CAUSE = Cause(correlation_id="test", actor="test")
HOUR = timedelta(hours=1)


@pytest.fixture
def stack():
    with mock_aws():
        yield make_stack(prefix="sw")


@pytest.fixture
def svc(memory_core):
    """store, pool and issues on the in-memory store: the sweep's decisions need nothing else."""
    return memory_core


def _now() -> datetime:
    return datetime.now(UTC)


def _reserve(core, *, at: datetime, issue: str = "issue-octo/demo#1"):
    """Reserve with the pool's clock set to ``at`` (so the lease's times are in the past)."""
    pool = Pool(store=core.store, clock=lambda: at, lease_seconds=900)
    lease = pool.reserve(issue=issue, worker="old-worker", cause=CAUSE)
    assert lease is not None
    return lease


def test_expired_lease_times_out_and_its_running_issue_fails_retryable(svc):
    register(svc, member_ids(2))
    queue_issue(svc, "body", number=1, send=False)
    lease = _reserve(svc, at=_now() - HOUR)
    svc.issues.record("octo/demo", 1, "IssueProcessingStarted", {"run": 1, "account_id": lease.account_id,
                        "lease_id": lease.lease_id, "worker": "old-worker"}, cause=CAUSE)
    done = sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600)
    assert done == {"timed_out": [lease.account_id], "skipped": [], "ended": []}
    assert svc.pool.get(lease.account_id).status == CLEANING
    timed_out = last(svc, f"account-{lease.account_id}", "AccountTimedOut")["data"]
    assert timed_out["lease_id"] == lease.lease_id and timed_out["reserved_at"] == lease.reserved_at
    failed = last(svc, issue_stream("octo/demo", 1), "IssueProcessingFailed")
    assert (failed["data"]["error"], failed["data"]["retryable"], failed["data"]["lease_id"]) == (
        "timed_out", True, lease.lease_id)
    # both carry the run's correlation id (its delivery), so the run's audit trail shows the timeout
    received = svc.store.read(issue_stream("octo/demo", 1))[0]
    assert failed["correlation_id"] == received["correlation_id"]
    assert last(svc, f"account-{lease.account_id}", "AccountTimedOut")["correlation_id"] == received["correlation_id"]


def test_lease_older_than_the_hard_cap_times_out_even_with_fresh_heartbeats(svc):
    register(svc, member_ids(1))
    lease = _reserve(svc, at=_now() - 4 * HOUR)
    svc.pool.renew(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)  # expires in 15 min
    assert sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600)["timed_out"] == [lease.account_id]
    assert sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600)["timed_out"] == []


def test_live_lease_is_not_touched(svc):
    register(svc, member_ids(1))
    _reserve(svc, at=_now())
    assert sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600) == {"timed_out": [], "skipped": [], "ended": []}


def test_lease_renewed_after_the_index_read_is_left_alone(svc, monkeypatch):
    # GIVEN the sweeper read a stale row, and the worker renewed the lease right after
    register(svc, member_ids(1))
    lease = _reserve(svc, at=_now() - HOUR)
    snapshot = svc.pool.stale_leases(now=_now(), hard_cap_seconds=3 * 3600)
    svc.pool.renew(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)
    monkeypatch.setattr(svc.pool, "stale_leases", lambda **_: snapshot)
    # WHEN it acts on its snapshot THEN the conditional write refuses and nothing is appended
    assert sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600) == {
        "timed_out": [], "skipped": [lease.account_id], "ended": []}
    assert "AccountTimedOut" not in types(svc, f"account-{lease.account_id}")


def test_stale_workers_late_release_is_refused(svc):
    register(svc, member_ids(1))
    lease = _reserve(svc, at=_now() - HOUR)
    sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600)
    with pytest.raises(IllegalTransition):
        svc.pool.release(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)
    with pytest.raises(IllegalTransition):
        svc.pool.renew(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)
    assert "AccountReleased" not in types(svc, f"account-{lease.account_id}")


def test_swept_run_is_refused_its_verdict_then_cleaned_and_retried(stack):
    # GIVEN a worker whose run is swept while the snippet runs (it stopped heartbeating)
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "body", number=2)
    issue = issue_stream("octo/demo", 2)

    def slow_processor(job):
        sweep(stack.pool, stack.issues, now=_now() + 2 * HOUR, hard_cap_seconds=3 * 3600)
        return Outcome("reproduced", "late", exit_code=1)

    worker = make_worker(stack, processor=slow_processor)
    # WHEN it finishes, its verdict and its release are refused, and the message comes back
    assert worker.poll_once() == "lost_lease"
    assert types(stack, issue)[-2:] == ["IssueProcessingStarted", "IssueProcessingFailed"]
    assert "AccountReleased" not in types(stack, f"account-{member}")
    # THEN the AccountTimedOut (delivered by the bus rule) is cleaned first, and the run is retried
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountTimedOut"))
    worker.processor = lambda job: Outcome("not_reproduced", "second try", exit_code=0)
    assert worker.poll_once() == "cleanup_cleaned"
    assert stack.pool.get(member).status == AVAILABLE
    assert worker.poll_once() == "not_reproduced"
    processed = last(stack, issue, "IssueProcessed")
    started = last(stack, issue, "IssueProcessingStarted")
    assert started["data"]["attempt"] == 2 and processed["data"]["verdict"] == "not_reproduced"


def test_sweeper_reads_o_stale_items_with_1000_accounts(stack, monkeypatch, capsys):
    # GIVEN 1,000 registered accounts, 3 stale leases and 20 live ones
    started = time.monotonic()
    bulk_register(stack, member_ids(1000))
    setup_s = time.monotonic() - started
    ids = member_ids(1000)
    stale = ids[10:13]
    bulk_reserve(stack, stale, at=_now() - HOUR)
    bulk_reserve(stack, ids[100:120], at=_now())
    # WHEN the sweeper runs, counting every item DynamoDB returns to it
    reads: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        answer = original(self, operation, params)
        if operation in ("Query", "Scan"):
            where = params.get("IndexName") or ("table" if operation == "Query" else params["TableName"])
            reads[f"{operation}:{where}"] += answer.get("Count", 0)
        elif operation in ("GetItem", "BatchGetItem"):
            reads[operation] += 1
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    done = sweep(stack.pool, stack.issues, now=_now(), hard_cap_seconds=3 * 3600)
    monkeypatch.undo()
    # THEN exactly the 3 stale leases are read (through the indexes) and timed out, no pool scan
    # (the stuck-run check scans the issues table: no issue is waiting here, so it reads none)
    assert sorted(done["timed_out"]) == stale
    assert [key for key in reads if key.startswith("Scan")] == [f"Scan:{stack.settings.issues_table}"]
    assert reads["Query:by-expiry"] == 3 and reads["Query:by-reserved"] == 0
    assert sum(reads.values()) <= 3 * 3  # index rows + at most one issue read per stale lease
    with capsys.disabled():
        print(f"\n[sweeper] 1000 accounts bulk-registered in {setup_s:.1f}s; items read for 3 stale: {dict(reads)}")


def test_handler_builds_from_env_and_sweeps(stack, monkeypatch):
    register(stack, member_ids(1))
    lease = _reserve(stack, at=_now() - HOUR)
    monkeypatch.setenv("GIP_PREFIX", "sw")
    new_container(monkeypatch, sweeper)
    result = sweeper.handler({"source": "aws.events"}, None)
    assert result["timed_out"] == [lease.account_id] and result["batchItemFailures"] == []


def test_stack_settings_are_the_ones_the_handler_reads(stack):
    # the handler builds its own Settings from GIP_PREFIX; the fixture's tables must match it
    assert replace(stack.settings).pool_table == "sw-pool"


def test_timeout_of_the_last_allowed_attempt_is_not_retryable(svc):
    register(svc, member_ids(1))
    queue_issue(svc, "body", number=5, send=False)
    lease = _reserve(svc, at=_now() - HOUR, issue=issue_stream("octo/demo", 5))
    svc.issues.record("octo/demo", 5, "IssueProcessingStarted", {"run": 1, "account_id": lease.account_id,
                        "lease_id": lease.lease_id, "worker": "w", "attempt": 3}, cause=CAUSE)
    sweep(svc.pool, svc.issues, now=_now(), hard_cap_seconds=3 * 3600, max_attempts=3)
    failed = last(svc, issue_stream("octo/demo", 5), "IssueProcessingFailed")["data"]
    assert (failed["error"], failed["attempt"], failed["retryable"]) == ("timed_out", 3, False)


# ---------------------------------------------------------------- issue 19 §2: stuck runs end


def _received(stack, number: int):
    data = {"repo": "octo/demo", "number": number, "title": "t", "labels": ["needs-reproduction"],
            "trigger": "labeled", "sender": "maint", "html_url": "", "body": ""}
    got = stack.issues.receive(delivery_id=f"d-stuck-{number}", repo="octo/demo", number=number,
                               data=data, cause=CAUSE)
    assert got.appended
    return got


def test_runs_stuck_received_or_queued_past_their_bound_are_skipped_with_the_reason(stack):
    _received(stack, 1)  # RECEIVED: its gatekeeper record went to the DLQ, say
    queue_issue(stack, "body", number=2, send=False)  # QUEUED
    # an hour on, only the RECEIVED run is past its bound
    done = sweep(stack.pool, stack.issues, now=_now() + HOUR + timedelta(seconds=5), hard_cap_seconds=3 * 3600)
    assert done["ended"] == [issue_stream("octo/demo", 1)]
    first = stack.issues.get("octo/demo", 1)
    assert (first.status, first.reason) == ("SKIPPED", "stuck_received")
    assert last(stack, issue_stream("octo/demo", 1), "IssueSkipped")["data"]["detail"].startswith("RECEIVED for ")
    assert stack.issues.get("octo/demo", 2).status == "QUEUED"
    # a day on, the QUEUED one too; and the issue can be triggered again
    done = sweep(stack.pool, stack.issues, now=_now() + 25 * HOUR, hard_cap_seconds=3 * 3600)
    assert done["ended"] == [issue_stream("octo/demo", 2)]
    assert stack.issues.get("octo/demo", 2).reason == "stuck_queued"
    again = stack.issues.receive(delivery_id="d-again", repo="octo/demo", number=1,
                                 data={"repo": "octo/demo", "number": 1, "title": "t", "labels": [],
                                       "trigger": "labeled", "sender": "maint", "html_url": "", "body": ""},
                                 cause=CAUSE)
    assert again.appended and again.issue.run == 2


def test_a_fresh_run_is_not_stuck(stack):
    _received(stack, 3)
    assert sweep(stack.pool, stack.issues, now=_now(), hard_cap_seconds=3 * 3600)["ended"] == []
    assert stack.issues.get("octo/demo", 3).status == "RECEIVED"
