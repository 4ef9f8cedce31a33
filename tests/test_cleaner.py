"""worker.cleaning (built-in cleaner, residue) and worker.cleanup (claim, failures, quarantine)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from moto import mock_aws

from gip.domain.envelope import Cause, iso
from gip.domain.pool import AVAILABLE, CLEANING, QUARANTINED
from gip.services.projection import Projections
from tests.cleaning_fixtures import LAMBDA_TRUST, make_everything
from tests.worker_env import (
    ROLE,
    last,
    make_stack,
    make_worker,
    member_credentials,
    member_ids,
    queue_issue,
    register,
    send_event,
    types,
)
from worker.cleaner import CleanupJob, Protection, clean, load_cleaner
from worker.cleaning.builtin import ALL_KINDS
from worker.cleaning.plan import plan_stacks, tagged_residue
from worker.cleaning.residue import find_residue
from worker.cleanup import CLEANED, NOT_NEEDED, CleanupBusy, CleanupFailed

REGIONS = ("us-east-1", "eu-west-1")
PROTECT = Protection(prefix="cl", role_name=ROLE)


@pytest.fixture
def amazon_amis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Some of moto's public AMIs (conftest turns them off): the billable set runs an instance
    from one, and the cleaner must leave their snapshots, which moto lists as ours, alone. Only
    the test of the built-in cleaner's sweep takes them. The first 20 of moto's ~1,300 show that
    as well as all of them do: all of them cost ~1 s per region to load and ~4 s of listing
    their snapshots. With ``MOTO_AMIS_PATH`` set, moto loads its module-level ``AMIS`` (read at
    import, so replaced here) and skips its per-region lists."""
    from moto.ec2.models import amis

    monkeypatch.setattr(amis, "AMIS", amis.AMIS[:20])
    monkeypatch.setenv("MOTO_AMIS_PATH", "the first 20 of moto's own (amis.AMIS)")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")


def test_plan_stacks_never_touches_our_stackset_stacks_nor_nested_ones():
    summaries = [
        {"StackName": "StackSet-cl-member-abc", "StackStatus": "CREATE_COMPLETE"},  # ours
        {"StackName": "StackSet-cl", "StackStatus": "CREATE_COMPLETE"},  # not "StackSet-cl-": a run's
        {"StackName": "StackSet-other-x", "StackStatus": "CREATE_COMPLETE"},  # another StackSet: a run's
        {"StackName": "made-in-run", "StackStatus": "ROLLBACK_COMPLETE"},
        {"StackName": "nested", "StackStatus": "CREATE_COMPLETE", "ParentId": "arn:parent"},
        {"StackName": "gone", "StackStatus": "DELETE_COMPLETE"},
    ]
    assert plan_stacks(summaries, PROTECT) == ["StackSet-cl", "StackSet-other-x", "made-in-run"]


def test_tagged_residue_reports_billable_services_no_kind_lists():
    arns = [
        "arn:aws:ec2:us-east-1:1:instance/i-1",  # listed per service: authoritative there
        "arn:aws:sns:us-east-1:1:topic",  # no standing cost
        "arn:aws:es:us-east-1:1:domain/search",
        "arn:aws:sagemaker:us-east-1:1:endpoint/x",
        "arn:aws:kms:us-east-1:1:key/StackSet-cl-member-1",  # ours
        "not-an-arn",
    ]
    assert tagged_residue(arns, PROTECT) == ["arn:aws:es:us-east-1:1:domain/search",
                                             "arn:aws:sagemaker:us-east-1:1:endpoint/x"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch):
    with mock_aws():
        yield make_stack(prefix="cl")
        # mock_aws's exit resets every EC2 backend: without the AMIs (~1 s each time)
        monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def _job(stack, member: str, regions=REGIONS) -> CleanupJob:
    return CleanupJob(account_id=member, lease_id="L1", regions=regions,
                      credentials=member_credentials(stack)(member, "L1"), protection=PROTECT,
                      sleep=lambda _: None, wait_s=30)


def _others_snapshots(job: CleanupJob, region: str, member: str) -> set[str]:
    snapshots = job.client("ec2", region).describe_snapshots(OwnerIds=[member])["Snapshots"]
    return {s["SnapshotId"] for s in snapshots if s["OwnerId"] != member}


def test_builtin_cleaner_leaves_nothing_billable_in_every_allowed_region(amazon_amis, stack):
    # GIVEN a member account with one of every costly kind in two regions, plus our own things
    member = member_ids(1)[0]
    job = _job(stack, member)
    iam = job.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    lambda_role = iam.create_role(RoleName="run-role", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    job.client("cloudformation").create_stack(StackName="StackSet-cl-member-1234", TemplateBody=json.dumps(
        {"Resources": {"R": {"Type": "AWS::SNS::Topic"}}}))
    for region in REGIONS:
        make_everything(job.client, region, role_arn=lambda_role)
    before = find_residue(job)
    public = {region: _others_snapshots(job, region, member) for region in REGIONS}
    assert all(public.values()), "moto lists the public AMIs' snapshots to the member"
    assert {label.split("/")[0] for label in before} == {k.name for k in ALL_KINDS}, before
    # WHEN the built-in cleaner runs
    removed = clean(job)
    # THEN nothing billable is left anywhere, and every kind was removed in both regions
    assert find_residue(job) == []
    assert {label.split("/")[0] for label in removed} == {k.name for k in ALL_KINDS}
    for region in REGIONS:
        assert any(label.endswith(f"@{region}") for label in removed if label.startswith("ec2:instance"))
    # AND the public AMIs' snapshots moto lists to the member are left alone
    assert {region: _others_snapshots(job, region, member) for region in REGIONS} == public
    # AND our own stack and role are still there
    stacks = job.client("cloudformation").describe_stacks()["Stacks"]
    assert [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"] == ["StackSet-cl-member-1234"]
    assert iam.get_role(RoleName=ROLE)["Role"]["RoleName"] == ROLE
    print(f"\nbuilt-in cleaner: {len(ALL_KINDS)} resource kinds, regions swept: {', '.join(REGIONS)}")


def test_cleanup_failure_quarantines_after_three_tries_and_replay_says_why(stack):
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
    # THEN each failed try is an event, numbered from the log, and the third quarantines
    assert len(calls) == 3
    failed = [e["data"] for e in stack.store.read(f"account-{member}") if e["type"] == "AccountCleanupFailed"]
    assert [f["attempt"] for f in failed] == [1, 2, 3]
    assert all("DELETE_FAILED" in f["error"] and f["residue"] == [] for f in failed)
    assert types(stack, f"account-{member}")[-2:] == ["AccountCleanupFailed", "AccountQuarantined"]
    quarantined = last(stack, f"account-{member}", "AccountQuarantined")["data"]
    assert quarantined["attempts"] == 3 and "DELETE_FAILED" in quarantined["reason"]
    assert stack.pool.get(member).status == QUARANTINED
    assert stack.pool.reserve(issue="issue-octo/demo#99", worker="w", cause=Cause("c", "t")) is None
    assert Projections(stack.store).verify() == []


def test_a_failed_attempt_records_error_and_residue_redacted(stack):
    # GIVEN a cleaner whose failure message, and a residue whose name, carry secrets a run chose
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=7)
    token = "ghp_" + "A1b2" * 9
    key_id = "AKIA" + "QWERTYUIOPASDFGH"

    def leaky(job):
        raise RuntimeError(f"delete failed for {key_id} with {token}")

    worker = make_worker(stack, cleaner=leaky)
    # WHEN the releasing worker's direct cleaning fails, and the retry leaves a named residue
    worker.poll_once()
    worker.cleanup.cleaner = lambda job: []
    worker.cleanup.residue = lambda job: [f"logs:log-group/{token}"]
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountReleased"))
    assert worker.poll_once() == "cleanup_retry"
    # THEN both AccountCleanupFailed events say what failed, with neither secret in them
    first, second = [e["data"] for e in stack.store.read(f"account-{member}") if e["type"] == "AccountCleanupFailed"]
    assert "delete failed" in first["error"] and second["residue"][0].startswith("logs:log-group/")
    assert token not in json.dumps([first, second]) and key_id not in json.dumps([first, second])


def test_residue_is_a_failed_attempt_that_names_what_is_left(stack):
    # GIVEN a cleaner that says it worked but left a bucket behind
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=6)
    worker = make_worker(stack, cleaner=lambda job: [])
    make_bucket = member_credentials(stack)(member, "x")
    import boto3

    creds = make_bucket()
    boto3.client("s3", region_name="us-east-1", aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                 aws_session_token=creds["AWS_SESSION_TOKEN"]).create_bucket(Bucket="left-behind")
    # WHEN the worker runs an issue and cleans directly
    worker.poll_once()
    # THEN the attempt failed, with the residue named, and the account stays CLEANING
    failed = last(stack, f"account-{member}", "AccountCleanupFailed")["data"]
    assert failed["residue"] == ["s3:bucket/left-behind"] and failed["attempt"] == 1
    assert "1 billable resource(s) left" in failed["error"]
    state = stack.pool.get(member)
    assert (state.status, state.cleanup_failures) == (CLEANING, 1)
    # AND the next try with the real cleaner cleans it and resets the count
    worker.cleanup.cleaner = clean
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountReleased"))
    assert worker.poll_once() == "cleanup_cleaned"
    assert stack.pool.get(member).cleanup_failures == 0
    assert "s3:bucket/left-behind" in last(stack, f"account-{member}", "AccountCleaned")["data"]["removed"]


def test_a_second_cleaner_backs_off_while_the_claim_is_held_and_takes_over_once_it_lapses(stack):
    # GIVEN an account in CLEANING whose first cleaner claimed it and then died
    member = member_ids(1)[0]
    register(stack, [member])
    cause = Cause("c", "t")
    lease = stack.pool.reserve(issue="issue-octo/demo#1", worker="w", cause=cause)
    stack.pool.release(member, lease_id=lease.lease_id, cause=cause)
    claim = stack.pool.claim_cleaning(stack.pool.get(member), owner="dead-worker", seconds=600)
    assert claim is not None
    assert Projections(stack.store).verify() == []  # the claim is operational, not folded state
    cleanup = make_worker(stack).cleanup
    calls = []
    cleanup.cleaner = lambda job: calls.append(job.account_id) or []
    # WHEN another cleaner tries: it backs off, runs nothing and records nothing
    with pytest.raises(CleanupBusy) as busy:
        cleanup.attempt(member, lease_id=lease.lease_id, since=None, cause=cause)
    assert busy.value.holder == "dead-worker" and 590 <= busy.value.retry_after_s <= 610
    assert calls == [] and types(stack, f"account-{member}")[-1] == "AccountReleased"
    # AND once the claim has lapsed, it takes over and cleans
    later = stack.pool.clock() + timedelta(seconds=601)
    stack.pool.clock = cleanup.clock = lambda: later
    assert cleanup.attempt(member, lease_id=lease.lease_id, since=None, cause=cause) == CLEANED
    assert calls == [member]
    # AND the dead cleaner, were it to come back, can record nothing
    with pytest.raises(Exception):  # noqa: B017 - ConcurrencyConflict or IllegalTransition
        stack.pool.cleanup_failed(claim, error="late", residue=[], cause=cause, quarantine_after=3)
    assert types(stack, f"account-{member}")[-1] == "AccountCleaned"


def test_a_claim_lost_mid_cleaning_records_nothing(stack):
    member = member_ids(1)[0]
    register(stack, [member])
    cause = Cause("c", "t")
    lease = stack.pool.reserve(issue="issue-octo/demo#1", worker="w", cause=cause)
    stack.pool.release(member, lease_id=lease.lease_id, cause=cause)
    cleanup = make_worker(stack).cleanup

    def slow_then_stolen(job):  # another cleaner takes the row over while this one works
        stack.tables.pool(f"account-{member}").update(actions=[
            stack.tables.pool.cleaning_by.set("thief"), stack.tables.pool.claim_expires_at.set(iso(later))])
        raise RuntimeError("boom")

    later = stack.pool.clock() + timedelta(hours=1)
    cleanup.cleaner = slow_then_stolen
    assert cleanup.attempt(member, lease_id=lease.lease_id, since=None, cause=cause) == NOT_NEEDED
    assert "AccountCleanupFailed" not in types(stack, f"account-{member}")


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


def test_reinstated_account_is_cleaned_through_the_queue_with_a_fresh_count(stack):
    member = member_ids(1)[0]
    register(stack, [member])
    queue_issue(stack, "no code here", number=5)
    worker = make_worker(stack, cleaner=_always_fail)
    worker.poll_once()
    assert stack.pool.get(member).cleanup_failures == 1
    stack.pool.quarantine(member, reason="test", attempts=3, cause=Cause("c", "t"))
    reinstated = stack.pool.reinstate(member, reason="fixed by hand", cause=Cause("c", "operator"))
    assert stack.pool.get(member).cleanup_failures == 0
    send_event(stack, stack.settings.cleanup_queue_url, reinstated)
    worker.cleanup.cleaner = load_cleaner("builtin")
    assert worker.poll_once() == "cleanup_cleaned"
    assert stack.pool.get(member).status == AVAILABLE


def test_direct_failure_raises_for_the_queue_to_retry(stack):
    member = member_ids(1)[0]
    register(stack, [member])
    cause = Cause("c", "t")
    lease = stack.pool.reserve(issue="issue-octo/demo#1", worker="w", cause=cause)
    stack.pool.release(member, lease_id=lease.lease_id, cause=cause)
    cleanup = make_worker(stack, cleaner=_always_fail).cleanup
    with pytest.raises(CleanupFailed) as failed:
        cleanup.attempt(member, lease_id=lease.lease_id, since=None, cause=cause)
    assert failed.value.attempt == 1 and "RuntimeError: nope" in failed.value.reason


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


def test_allowed_regions_start_with_the_home_region_and_bad_names_are_one_line():
    from gip.config import Settings
    from gip.errors import ConfigError
    from worker.config import WorkerConfig

    settings = Settings.for_prefix("x")
    assert WorkerConfig.from_env({}, settings=settings).allowed_regions == (settings.region,)
    cfg = WorkerConfig.from_env({"ALLOWED_REGIONS": " eu-west-1,us-east-1 ,"}, settings=settings)
    assert cfg.allowed_regions == tuple(dict.fromkeys([settings.region, "eu-west-1", "us-east-1"]))
    with pytest.raises(ConfigError, match="ALLOWED_REGIONS has 'eu-west-1; rm -rf'"):
        WorkerConfig.from_env({"ALLOWED_REGIONS": "eu-west-1; rm -rf"}, settings=settings)


def test_the_claim_is_renewed_while_a_long_cleaning_runs(stack):
    # GIVEN a 1-second claim and a cleaner that works for 2.5 seconds
    member = member_ids(1)[0]
    register(stack, [member])
    cause = Cause("c", "t")
    lease = stack.pool.reserve(issue="issue-octo/demo#1", worker="w", cause=cause)
    stack.pool.release(member, lease_id=lease.lease_id, cause=cause)
    cleanup = make_worker(stack).cleanup
    cleanup.claim_s = 1
    rivals = []

    def slow(job):
        import time

        for _ in range(5):  # meanwhile a second cleaner keeps trying to take the account
            time.sleep(0.5)
            rivals.append(stack.pool.claim_cleaning(stack.pool.get(member), owner="rival", seconds=1))
        return []

    cleanup.cleaner = slow
    # WHEN it cleans, THEN the heartbeat kept the rival out the whole time, and the outcome counts
    assert cleanup.attempt(member, lease_id=lease.lease_id, since=None, cause=cause) == CLEANED
    assert rivals == [None] * 5


def test_a_busy_cleanup_message_comes_back_later_without_spending_a_receive(stack):
    # GIVEN an account whose cleaning another worker has claimed
    member = member_ids(1)[0]
    register(stack, [member])
    cause = Cause("c", "t")
    lease = stack.pool.reserve(issue="issue-octo/demo#1", worker="w", cause=cause)
    released = stack.pool.release(member, lease_id=lease.lease_id, cause=cause)
    assert stack.pool.claim_cleaning(stack.pool.get(member), owner="other", seconds=120)
    send_event(stack, stack.settings.cleanup_queue_url, released)
    # WHEN a worker takes the cleanup message
    assert make_worker(stack).poll_once() == "cleanup_busy"
    # THEN the message is back on the queue as a fresh, delayed copy: no receive was spent
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.settings.cleanup_queue_url, AttributeNames=["All"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert types(stack, f"account-{member}")[-1] == "AccountReleased"  # and nothing was recorded
