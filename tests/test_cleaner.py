"""worker.cleaner / worker.cleanup: what is deleted in the member account, and quarantine after 3 failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from handlers.core.envelope import Cause
from handlers.core.pool import AVAILABLE, CLEANING, QUARANTINED
from tests.worker_env import (
    last,
    make_stack,
    make_worker,
    member_clients,
    member_ids,
    queue_issue,
    register,
    send_event,
    types,
)
from worker.cleaner import CleanupJob, clean, load_cleaner, plan_buckets, plan_stacks

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=30)
TEMPLATE = json.dumps({"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "made-by-stack"}}}})


def test_plan_stacks_never_touches_stackset_stacks_and_uses_tag_or_window():
    stacks = [
        {"StackName": "StackSet-gip-member-abc", "CreationTime": NOW},  # the processing role's own
        {"StackName": "made-in-run", "CreationTime": NOW - timedelta(minutes=5)},
        {"StackName": "older", "CreationTime": NOW - timedelta(days=3)},
        {"StackName": "tagged", "CreationTime": NOW - timedelta(days=3), "Tags": [{"Key": "gip:lease", "Value": "L1"}]},
        {"StackName": "kept", "CreationTime": NOW, "Tags": [{"Key": "gip:keep", "Value": "1"}]},
        {"StackName": "nested", "CreationTime": NOW, "ParentId": "arn:parent"},
    ]
    assert plan_stacks(stacks, lease_id="L1", since=SINCE, until=NOW) == ["made-in-run", "tagged"]
    assert plan_stacks(stacks, lease_id=None, since=None, until=NOW) == ["made-in-run", "older", "tagged"]


def test_plan_buckets_skips_what_the_stackset_stack_made():
    buckets = [{"Name": "run-bucket", "CreationDate": NOW}, {"Name": "role-bucket", "CreationDate": NOW},
               {"Name": "old", "CreationDate": NOW - timedelta(days=1)}]
    tags = {"role-bucket": {"aws:cloudformation:stack-name": "StackSet-gip-member-abc"}}
    assert plan_buckets(buckets, tags, lease_id="L1", since=SINCE, until=NOW) == ["run-bucket"]


@pytest.fixture
def stack():
    with mock_aws():
        yield make_stack(prefix="cl")


def test_builtin_cleaner_deletes_run_stacks_and_buckets_in_the_member_account_only(stack):
    member = member_ids(1)[0]
    client = member_clients(stack)(member, "L1")
    cfn, s3 = client("cloudformation"), client("s3")
    # GIVEN in the member account: the StackSet stack, a bucket from before, and what a run made
    cfn.create_stack(StackName="StackSet-gip-member-1234", TemplateBody=json.dumps({"Resources": {
        "R": {"Type": "AWS::SNS::Topic"}}}))
    s3.create_bucket(Bucket="operator-bucket")
    since = datetime.now(UTC) + timedelta(minutes=5)  # everything so far is "before the lease"
    cfn.create_stack(StackName="run-stack", TemplateBody=TEMPLATE, Tags=[{"Key": "gip:lease", "Value": "L1"}])
    s3.create_bucket(Bucket="run-bucket")
    s3.put_bucket_tagging(Bucket="run-bucket", Tagging={"TagSet": [{"Key": "gip:lease", "Value": "L1"}]})
    s3.put_object(Bucket="run-bucket", Key="a/b.txt", Body=b"x")
    # and the management account has a bucket the member role must never see
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="management-only")
    # WHEN the built-in cleaner runs for lease L1
    removed = clean(CleanupJob(account_id=member, lease_id="L1", region="us-east-1", since=since,
                               until=since + timedelta(minutes=10), client=client, sleep=lambda _: None))
    # THEN exactly the run's resources are gone
    assert sorted(removed) == ["cloudformation:stack/run-stack", "s3:bucket/run-bucket"]
    live = {s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"}
    assert live == {"StackSet-gip-member-1234"}
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"operator-bucket"}  # made-by-stack went with its stack
    assert "management-only" in {b["Name"] for b in boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"]}


def test_cleanup_failure_quarantines_after_three_tries(stack):
    # GIVEN a run whose account cannot be cleaned
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=3)
    calls = []

    def stuck(job):
        calls.append(job.lease_id)
        raise RuntimeError("stack DELETE_FAILED")

    worker = make_worker(stack, cleaner=stuck)
    assert worker.poll_once() == "no_repro_found"  # try 1: the releasing worker, directly
    assert stack.pool.get(member).status == CLEANING
    # WHEN the bus rule delivers AccountReleased to the cleanup queue and it fails twice more
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountReleased"))
    assert worker.poll_once() == "cleanup_retry"  # try 2
    _make_visible(stack)
    assert worker.poll_once() == "cleanup_quarantined"  # try 3
    # THEN the account is quarantined with the reason and never reserved again
    assert len(calls) == 3
    quarantined = last(stack, f"account-{member}", "AccountQuarantined")["data"]
    assert quarantined["attempts"] == 3 and "DELETE_FAILED" in quarantined["reason"]
    assert stack.pool.get(member).status == QUARANTINED
    assert stack.pool.reserve(issue="issue-octo/demo#99", worker="w", cause=Cause("c", "t")) is None


def test_cleanup_message_for_an_already_clean_account_is_a_no_op(stack):
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=4)
    worker = make_worker(stack)
    worker.poll_once()
    assert stack.pool.get(member).status == AVAILABLE
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountReleased"))
    assert worker.poll_once() == "cleanup_not_needed"
    assert types(stack, f"account-{member}").count("AccountCleaned") == 1


def test_reinstated_account_is_cleaned_through_the_queue(stack):
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=5)
    worker = make_worker(stack, cleaner=_always_fail)
    worker.poll_once()
    stack.pool.quarantine(member, reason="test", attempts=3, cause=Cause("c", "t"))
    reinstated = stack.pool.reinstate(member, reason="fixed by hand", cause=Cause("c", "operator"))
    send_event(stack, stack.settings.cleanup_queue_url, reinstated)
    worker.cleanup.cleaner = load_cleaner("worker.cleaner:clean")
    assert worker.poll_once() == "cleanup_cleaned"
    assert stack.pool.get(member).status == AVAILABLE


def _always_fail(job):
    raise RuntimeError("nope")


def _make_visible(stack):
    """Skip the retry backoff: what time passing would do."""
    msgs = stack.sqs.receive_message(QueueUrl=stack.settings.cleanup_queue_url, VisibilityTimeout=0,
                                     WaitTimeSeconds=0).get("Messages", [])
    assert msgs == [], "the failed cleanup message must be hidden by its backoff"
    from moto.sqs.models import sqs_backends
    for queue in sqs_backends["123456789012"]["us-east-1"].queues.values():
        for message in queue._messages:
            message.change_visibility(0)
