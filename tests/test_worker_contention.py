"""A worker that loses the races for free accounts looks again in seconds, without counting a wait;
an empty pool still backs off exponentially (tests/test_worker_loop.py). moto in-process."""

from __future__ import annotations

import random

import pytest
from moto import mock_aws

from gip.domain.envelope import Cause
from gip.services.pool import CONTENDED, EMPTY, Pool
from tests.conftest import make_memory_core
from tests.worker_env import (
    LosesEveryRace,
    make_stack,
    make_worker,
    member_ids,
    queue_issue,
    register,
    types,
)

CAUSE = Cause(correlation_id="t", actor="test")


def test_reserve_says_why_it_gave_none():
    core = make_memory_core()
    pool = Pool(store=core.store, rng=random.Random(1))
    assert pool.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE) is None and pool.last_miss == EMPTY
    pool.register("111111111111", role_arn="arn:aws:iam::111111111111:role/r", source="manual", cause=CAUSE)
    racing = Pool(store=LosesEveryRace(core.store), rng=random.Random(1))
    assert racing.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE) is None
    assert racing.last_miss == CONTENDED and racing.stats.contended == 1
    assert pool.reserve(issue="issue-o/r#1", worker="w", cause=CAUSE) is not None


@pytest.fixture
def stack():
    with mock_aws():
        yield make_stack()


def test_lost_races_look_again_within_seconds_without_counting_a_wait(stack):
    register(stack, member_ids(1))
    queue_issue(stack, "### Reproduction Steps\n\n```sh\ntrue\n```\n", number=7)
    worker = make_worker(stack)
    worker.pool.store = LosesEveryRace(worker.pool.store)
    url = stack.settings.issue_queue_url
    assert worker.poll_once() == "contended"
    assert types(stack, "issue-octo/demo#7")[-1] == "IssueQueued"  # not failed, not started
    import time

    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].queues[url.rsplit("/", 1)[1]]
    (copy,) = queue._messages
    assert 0 < (copy.delayed_until - time.time() * 1000) / 1000 <= 3  # seconds, not the 7.5-15 s backoff
    copy.delayed_until = 0
    (received,) = stack.sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert received["MessageAttributes"]["gip-waits"]["StringValue"] == "0"  # no wait counted
    stack.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"], VisibilityTimeout=0)
    # once the races are won, the same message is processed
    worker.pool.store = worker.pool.store.store
    assert worker.poll_once() not in ("contended", "backoff")
    assert "IssueProcessingStarted" in types(stack, "issue-octo/demo#7")


class StaleIndex:
    """A store whose status index still shows ``stale`` (an account already reserved) as
    AVAILABLE, first, as a GSI may for a moment after the write."""

    def __init__(self, store, stale) -> None:
        self.store, self.stale = store, stale

    def __getattr__(self, name):
        return getattr(self.store, name)

    def sample_accounts(self, status, *, pivot, limit):
        return [self.stale, *self.store.sample_accounts(status, pivot=pivot, limit=limit)][:limit]


class FirstChoice(random.Random):
    def choice(self, seq):
        return seq[0]


def test_reserve_never_races_twice_for_an_account_it_lost_that_the_index_still_shows():
    core = make_memory_core()
    taken, free = member_ids(2)
    core.pool.register(taken, role_arn=f"arn:aws:iam::{taken}:role/r", source="manual", cause=CAUSE)
    stale = core.pool.get(taken)
    assert core.pool.reserve(issue="issue-o/r#1", worker="other", cause=CAUSE).account_id == taken
    core.pool.register(free, role_arn=f"arn:aws:iam::{free}:role/r", source="manual", cause=CAUSE)
    pool = Pool(store=StaleIndex(core.store, stale), rng=FirstChoice(1))
    lease = pool.reserve(issue="issue-o/r#2", worker="w", cause=CAUSE)
    assert lease is not None and lease.account_id == free
    assert [account for account, _ in pool.last_trace.lost] == [taken] and pool.last_trace.sampled == (2, 2)
