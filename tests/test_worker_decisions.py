"""The worker says, in one INFO line per issue message, what it decided and why (issue 18):
reserved, contended, empty, dropped, busy; with the seconds until the message comes back.
moto in-process; caplog."""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from moto import mock_aws

from gip import observability
from gip.domain.envelope import Cause, issue_stream
from gip.services.pool import Pool, ReserveTrace
from tests.conftest import empty_tables, make_memory_core
from tests.worker_env import (
    LosesEveryRace,
    make_stack,
    make_worker,
    member_ids,
    queue_issue,
    register,
    send_event,
)
from worker.decisions import describe, message_facts

CAUSE = Cause(correlation_id="t", actor="test")
NO_SNIPPET = "### Description\n\nno reproduction here\n"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def shared():
    with mock_aws():
        yield make_stack(prefix="wd")


@pytest.fixture
def stack(shared):
    empty_tables(shared, pool=True)
    n = next(_numbers)
    shared.number, shared.issue = n, issue_stream("octo/demo", n)
    shared.settings = replace(
        shared.settings,
        issue_queue_url=shared.sqs.create_queue(QueueName=f"wd-issues-{n}")["QueueUrl"],
        cleanup_queue_url=shared.sqs.create_queue(QueueName=f"wd-cleanup-{n}")["QueueUrl"])
    return shared


def decisions(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "worker.decisions"]


class JsonLines(logging.Handler):
    """The decision lines as the worker prints them, formatted when logged (with the keys bound then)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(observability.JsonFormatter("worker"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def json_lines():
    handler = JsonLines()
    logger = logging.getLogger("worker.decisions")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def only_decision(caplog) -> logging.LogRecord:
    (record,) = decisions(caplog)
    assert record.levelno == logging.INFO
    return record


# --- the pool's trace ------------------------------------------------------------------------
def test_the_trace_counts_each_samples_available_rows_and_names_each_lost_race():
    core = make_memory_core()
    pool = Pool(store=core.store, rng=random.Random(3))
    assert pool.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE) is None
    assert pool.last_trace == ReserveTrace(sampled=(0,))
    for account in member_ids(4):
        pool.register(account, role_arn=f"arn:aws:iam::{account}:role/r", source="manual", cause=CAUSE)
    racing = Pool(store=LosesEveryRace(core.store), rng=random.Random(3))
    assert racing.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE) is None
    assert racing.last_trace.sampled == (3, 3)  # the sample's limit, twice: two rounds, two races
    assert [why for _, why in racing.last_trace.lost] == ["stream is at version 99"] * 2
    assert {a for a, _ in racing.last_trace.lost} <= set(member_ids(4))
    assert "saw 3, 3 AVAILABLE; lost the race for 2000000000" in racing.last_trace.describe()
    lease = pool.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE)
    assert lease is not None and pool.last_trace == ReserveTrace(sampled=(3,))  # a fresh trace per call


def test_message_facts_and_text_come_from_the_message_alone():
    now = datetime(2026, 11, 30, 7, 0, 2, tzinfo=UTC)
    msg = {"Attributes": {"SentTimestamp": str(int(now.timestamp() * 1000) - 1500)},
           "MessageAttributes": {"gip-waits": {"StringValue": "2"}}}
    facts = message_facts(msg, now)
    assert facts == {"waits": 2, "message_age_s": 1.5}
    assert message_facts({}, now) == {"waits": 0}
    assert describe("empty", "no account", facts, 9) == \
        "issue message empty, requeued in 9 s: no account (sent 1.5 s ago, 2 pool wait(s) so far)"


# --- one line per message, through the worker ---------------------------------------------------
def test_an_empty_pool_is_logged_with_the_sample_and_the_backoff(stack, caplog):
    queue_issue(stack, NO_SNIPPET, number=stack.number)
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what follows: an earlier test may have left INFO on for the logger
    assert make_worker(stack).poll_once() == "backoff"
    record = only_decision(caplog)
    assert record.decision == "empty" and 7 <= record.requeue_s <= 15 and record.waits == 0
    assert "requeued in" in record.getMessage() and "saw 0 AVAILABLE" in record.getMessage()
    assert 0 <= record.message_age_s < 30


def test_lost_races_are_logged_as_contended_with_the_accounts_and_a_short_requeue(stack, caplog):
    register(stack, member_ids(2, start=stack.number * 10))
    queue_issue(stack, NO_SNIPPET, number=stack.number)
    worker = make_worker(stack)
    worker.pool = replace(stack.pool, store=LosesEveryRace(stack.pool.store))  # the stack's pool stays as it is
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what follows: an earlier test may have left INFO on for the logger
    assert worker.poll_once() == "contended"
    record = only_decision(caplog)
    assert record.decision == "contended" and 1 <= record.requeue_s <= 3
    assert "lost the race for" in record.getMessage() and "stream is at version 99" in record.getMessage()


def test_a_reserve_is_logged_with_its_account_and_the_json_line_carries_the_keys(stack, caplog, json_lines):
    (account,) = member_ids(1, start=stack.number * 10)
    register(stack, [account])
    queue_issue(stack, NO_SNIPPET, number=stack.number)
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what follows: an earlier test may have left INFO on for the logger
    assert make_worker(stack).poll_once() == "no_repro_found"
    record = only_decision(caplog)
    assert record.decision == "reserved" and not hasattr(record, "requeue_s")
    assert f"account {account}" in record.getMessage() and "saw 1 AVAILABLE" in record.getMessage()
    (line,) = json_lines
    assert line["decision"] == "reserved" and line["stream"] == stack.issue and line["waits"] == 0
    assert line["level"] == "INFO" and 0 <= line["decide_s"] < 30 and line["correlation_id"]


def test_a_stale_message_is_logged_as_dropped_and_a_running_issue_as_busy(stack, caplog):
    register(stack, member_ids(1, start=stack.number * 10))
    queue_issue(stack, NO_SNIPPET, number=stack.number)
    worker = make_worker(stack)
    assert worker.poll_once() == "no_repro_found"
    queue_issue(stack, NO_SNIPPET, number=stack.number + 1000, send=False)
    issue = stack.issues.get("octo/demo", stack.number + 1000)
    stack.issues.record("octo/demo", stack.number + 1000, "IssueProcessingStarted", {
        "run": issue.run, "account_id": "999999999999", "lease_id": "l", "worker": "other", "attempt": 1},
        cause=CAUSE, expected=issue)
    # the processed issue's message again (a redelivery), then the running one's
    send_event(stack, stack.settings.issue_queue_url, stack.store.read(stack.issue)[1])
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what follows: an earlier test may have left INFO on for the logger
    assert worker.poll_once() == "dropped"
    record = only_decision(caplog)
    assert record.decision == "dropped" and "redelivery: run already processed" in record.getMessage()
    caplog.clear()
    send_event(stack, stack.settings.issue_queue_url, stack.store.read(issue_stream("octo/demo", stack.number + 1000))[1])
    assert worker.poll_once() == "busy"
    record = only_decision(caplog)
    assert record.decision == "busy" and "issue is RUNNING" in record.getMessage() and record.requeue_s >= 7


# --- the cause found with these lines: idle workers bounced busy cleanup messages ----------------
def test_a_cleanup_message_that_frees_nothing_does_not_cost_a_waiting_issue_its_turn(stack, caplog, json_lines):
    # GIVEN an account another worker is cleaning (its claim held), its AccountReleased on the
    # cleanup queue, and an issue waiting with a free account
    busy, free = member_ids(2, start=stack.number * 10)
    register(stack, [busy])
    lease = stack.pool.reserve(issue="issue-octo/demo#999", worker="other", cause=CAUSE)
    released = stack.pool.release(busy, lease_id=lease.lease_id, cause=CAUSE)
    assert stack.pool.claim_cleaning(stack.pool.get(busy), owner="other", seconds=120)
    send_event(stack, stack.settings.cleanup_queue_url, released)
    register(stack, [free])
    queue_issue(stack, NO_SNIPPET, number=stack.number)
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what follows: an earlier test may have left INFO on for the logger
    # WHEN an idle worker polls once
    assert make_worker(stack).poll_once() == "no_repro_found"
    # THEN it put the cleanup message back for later AND took the issue in the same turn
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.settings.cleanup_queue_url, AttributeNames=["All"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "IssueProcessed" in [e["type"] for e in stack.store.read(stack.issue)]
    record = only_decision(caplog)
    assert record.decision == "reserved" and f"account {free}" in record.getMessage()
    (line,) = json_lines
    assert line["stream"] == stack.issue and line.get("account_id") != busy  # the cleanup's keys ended with it


def test_with_no_issue_waiting_the_turn_reports_the_cleanup_message(stack):
    (busy,) = member_ids(1, start=stack.number * 10)
    register(stack, [busy])
    lease = stack.pool.reserve(issue="issue-octo/demo#999", worker="other", cause=CAUSE)
    released = stack.pool.release(busy, lease_id=lease.lease_id, cause=CAUSE)
    assert stack.pool.claim_cleaning(stack.pool.get(busy), owner="other", seconds=120)
    send_event(stack, stack.settings.cleanup_queue_url, released)
    started = time.monotonic()
    assert make_worker(stack, poll_wait_s=5).poll_once() == "cleanup_busy"
    assert time.monotonic() - started < 4  # the issue queue was looked at without a long poll
