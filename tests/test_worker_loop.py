"""worker.loop against moto in-process, with REAL subprocesses for the snippets."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from gip.domain.envelope import issue_stream
from gip.domain.pool import AVAILABLE, CLEANING
from gip.errors import AwsError
from tests.conftest import empty_tables
from tests.planted import DERANDOMIZE, EXAMPLES, TALLY, exact_values, families, fillers, leaks
from tests.worker_env import last, make_stack, make_worker, member_ids, register, types, visible
from tests.worker_env import queue_issue as _queue_issue
from worker.messages import backoff_seconds, message_action
from worker.processor import Outcome, load_processor
from worker.runner import Limits

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def shared():
    with mock_aws():
        yield make_stack()


@pytest.fixture
def stack(shared):
    """One moto + tables per module (creating them dominates the time); per test empty tables, a
    fresh issue number and account. Emptied, not appended to: moto deep-copies a table for every
    transaction that writes to it, so a module's worth of events made each transaction slower."""
    empty_tables(shared, pool=True)
    n = next(_numbers)
    shared.number, shared.member = n, member_ids(1, start=n)[0]
    shared.issue = issue_stream("octo/demo", n)
    attrs = {"VisibilityTimeout": "30"}
    shared.settings = replace(
        shared.settings,
        issue_queue_url=shared.sqs.create_queue(QueueName=f"wk-issues-{n}", Attributes=attrs)["QueueUrl"],
        cleanup_queue_url=shared.sqs.create_queue(QueueName=f"wk-cleanup-{n}", Attributes=attrs)["QueueUrl"])
    yield shared
    shared.settings = replace(shared.settings, results_bucket="wk-results")


def queue_issue(stack, body):
    return _queue_issue(stack, body, number=stack.number)


def _fence(lang: str, code: str) -> str:
    return f"### Reproduction Steps\n\n```{lang}\n{code}\n```\n\n### Expected behavior\n\nno crash\n"


def _result(stack, event) -> dict:
    uri = event["data"]["result_uri"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _log(stack, result) -> str:
    return stack.s3.get_object(Bucket=stack.settings.results_bucket, Key=result["log_key"])["Body"].read().decode()


@pytest.mark.parametrize(("body", "verdict", "exit_code"), [
    (_fence("bash", "echo about to fail\nexit 3"), "reproduced", 3),
    (_fence("python", "print('all fine')"), "not_reproduced", 0),
    (_fence("python", "def broken(:\n    pass"), "broken_repro", None),
    ("It crashes sometimes. No code, sorry.", "no_repro_found", None),
])
def test_full_run_on_a_real_snippet_gives_each_verdict(stack, body, verdict, exit_code):
    # GIVEN one account and a queued issue
    register(stack, [stack.member])
    queue_issue(stack, body)
    worker = make_worker(stack)
    # WHEN the worker takes the message
    assert worker.poll_once() == verdict
    # THEN the issue stream tells the whole run, and the results are in S3
    assert types(stack, stack.issue)[-2:] == ["IssueProcessingStarted", "IssueProcessed"]
    processed = last(stack, stack.issue, "IssueProcessed")["data"]
    assert (processed["verdict"], processed["exit_code"]) == (verdict, exit_code)
    assert processed["result_uri"] == f"s3://wk-results/octo/demo/{stack.number}/{processed['run']}/result.json"
    result = _result(stack, last(stack, stack.issue, "IssueProcessed"))
    assert result["verdict"] == verdict and result["account_id"] == stack.member
    if verdict in ("reproduced", "not_reproduced"):
        assert result["snippet_sha256"] and result["versions"]["python"]
        assert result["command"] in processed["command"]
    # AND the account was released, cleaned and is available again; the message is gone
    account_events = types(stack, f"account-{stack.member}")
    assert account_events[-3:] == ["AccountReserved", "AccountReleased", "AccountCleaned"]
    assert stack.pool.get(stack.member).status == AVAILABLE
    assert visible(stack, stack.settings.issue_queue_url) == []


def test_quoted_error_text_in_output_is_reproduced_even_with_exit_zero(stack):
    register(stack, [stack.member])
    body = _fence("sh", "echo 'ValueError: frob exploded'") + "\n### Actual behavior\n\n> ValueError: frob exploded\n"
    queue_issue(stack, body)
    assert make_worker(stack).poll_once() == "reproduced"
    assert last(stack, stack.issue, "IssueProcessed")["data"]["exit_code"] == 0


def test_child_sees_member_credentials_and_no_worker_secrets(stack, monkeypatch):
    # GIVEN a worker holding its own (management) keys and a GitHub token
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMANAGEMENTKEY")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_topsecret")
    register(stack, [stack.member])
    # (printed reversed: the stored log is redacted, and exact-value redaction matches values as they are)
    queue_issue(stack, _fence("python", "import json, os\nprint(json.dumps(dict(os.environ))[::-1])"))
    make_worker(stack).poll_once()
    # THEN the environment the child printed (stored log) holds only the member session
    seen = json.loads(_log(stack, _result(stack, last(stack, stack.issue, "IssueProcessed"))).strip()[::-1])
    assert seen["AWS_ACCESS_KEY_ID"] != "AKIAMANAGEMENTKEY" and seen["AWS_SESSION_TOKEN"]
    assert "GITHUB_TOKEN" not in seen
    assert not any("ghp_topsecret" in v or "AKIAMANAGEMENTKEY" in v for v in seen.values())
    # and those keys act inside the member account (moto keeps accounts apart)
    import boto3
    who = boto3.client("sts", region_name="us-east-1", aws_access_key_id=seen["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=seen["AWS_SECRET_ACCESS_KEY"],
                       aws_session_token=seen["AWS_SESSION_TOKEN"]).get_caller_identity()
    assert who["Account"] == stack.member
    assert "gip-" in who["Arn"]  # the session name carries the lease id


class RecordingSts:
    """STS that notes every AssumeRole and lets moto answer it."""

    def __init__(self, sts):
        self.sts, self.assumed = sts, []

    def assume_role(self, **kw):
        self.assumed.append(kw["RoleArn"])
        return self.sts.assume_role(**kw)

    def __getattr__(self, name):
        return getattr(self.sts, name)


def test_run_and_cleanup_assume_exactly_the_role_arn_the_account_registered(stack):
    # GIVEN an account registered with a role in another partition, under a custom name
    from gip.domain.envelope import Cause
    arn = f"arn:aws-cn:iam::{stack.member}:role/custom-runner"
    stack.pool.register(stack.member, role_arn=arn, source="stackset", cause=Cause("setup", "test"))
    queue_issue(stack, _fence("sh", "true"))
    sts = RecordingSts(stack.sts)
    # WHEN a worker runs the issue and cleans the account
    jobs = []

    def cleaner(job):
        jobs.append(job)
        return []

    make_worker(SimpleNamespace(**{**vars(stack), "sts": sts}), cleaner=cleaner).poll_once()
    # THEN every AssumeRole (the run's and the cleanup's) named that ARN, never a rebuilt one
    assert types(stack, stack.issue)[-1] == "IssueProcessed"
    assert len(sts.assumed) >= 2 and set(sts.assumed) == {arn}
    # AND the cleaner protects that role, not the default name
    assert jobs and jobs[0].protection.role("custom-runner") and not jobs[0].protection.role("gip-processing")


def test_no_account_backs_off_without_failing_the_issue_or_spending_receives(stack):
    queue_issue(stack, _fence("sh", "true"))
    worker = make_worker(stack)
    url = stack.settings.issue_queue_url
    assert worker.poll_once() == "backoff"
    assert types(stack, stack.issue)[-1] == "IssueQueued"
    assert visible(stack, url) == []  # a delayed copy waits; the received one is gone
    attrs = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessagesDelayed"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("1", "0")
    # WHEN the copy comes back (skip its delay) and there is still no account, it waits longer
    from moto.sqs.models import sqs_backends
    queue = sqs_backends["123456789012"]["us-east-1"].queues[url.rsplit("/", 1)[1]]
    import time

    def delay_of(message) -> float:
        return (message.delayed_until - time.time() * 1000) / 1000

    first_delay = delay_of(queue._messages[0])
    queue._messages[0].delayed_until = 0
    assert worker.poll_once() == "backoff"
    (copy,) = queue._messages
    assert 6 <= first_delay <= 15 and 14 <= delay_of(copy) <= 30
    copy.delayed_until = 0
    (received,) = stack.sqs.receive_message(QueueUrl=url, AttributeNames=["All"],
                                            MessageAttributeNames=["All"])["Messages"]
    assert received["MessageAttributes"]["gip-waits"]["StringValue"] == "2"
    assert received["Attributes"]["ApproximateReceiveCount"] == "1"  # no receive spent towards the DLQ


def test_pool_empty_longer_than_the_wait_fails_retryable_with_a_clear_error(stack):
    queue_issue(stack, _fence("sh", "true"))
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    assert make_worker(stack, clock=later, pool_wait_s=3600).poll_once() == "pool_timeout"
    failed = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert failed["retryable"] is True and failed["error"].startswith("no_account_available")


def test_backoff_grows_with_receive_count_and_has_jitter():
    import random
    rng = random.Random(0)
    waits = [backoff_seconds(n, base=15, cap=900, rng=rng) for n in range(1, 9)]
    assert 7 <= waits[0] <= 15 and 450 <= waits[-1] <= 900
    assert sum(waits) > 1500  # eight receives span well over the first minutes
    assert len({backoff_seconds(3, base=15, cap=900, rng=rng) for _ in range(20)}) > 1


def test_skipped_and_already_processed_messages_are_dropped(stack):
    register(stack, [stack.member])
    queued = queue_issue(stack, _fence("sh", "true"))
    worker = make_worker(stack)
    assert worker.poll_once() == "not_reproduced"
    # a redelivery of the same IssueQueued message
    from tests.worker_env import send_event
    send_event(stack, stack.settings.issue_queue_url, queued)
    assert worker.poll_once() == "dropped"
    assert types(stack, stack.issue).count("IssueProcessingStarted") == 1
    issue = stack.issues.get("octo/demo", stack.number)
    assert message_action(issue, issue.run, max_attempts=3).reason.startswith("redelivery")


def test_cancelled_issue_is_dropped_without_reserving(stack):
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "true"))
    from gip.domain.envelope import Cause
    stack.issues.cancel("octo/demo", stack.number, reason="closed", cause=Cause("x", "webhook"))
    assert make_worker(stack).poll_once() == "dropped"
    assert "AccountReserved" not in types(stack, f"account-{stack.member}")


def test_heartbeat_extends_visibility_every_beat_and_renews_the_lease_at_a_third(stack, monkeypatch):
    # GIVEN 1.5 s leases and a 0.1 s heartbeat, and a snippet that runs 1.6 s
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "sleep 1.6"))
    monkeypatch.setattr(stack.pool, "lease_seconds", 1.5)
    worker = make_worker(stack, heartbeat_s=0.1)
    extended = []
    original = worker.sqs.change_message_visibility
    worker.sqs = type("Spy", (), {"__getattr__": lambda self, name: getattr(stack.sqs, name),
                                  "change_message_visibility": lambda self, **kw: (extended.append(kw), original(**kw))[1]})()
    # WHEN the run completes
    assert worker.poll_once() == "not_reproduced"
    # THEN visibility was extended on every beat, but the lease renewed (an event) only every 0.5 s
    renewals = types(stack, f"account-{stack.member}").count("AccountLeaseRenewed")
    beats = [kw for kw in extended if kw["VisibilityTimeout"] == 60]
    assert len(beats) >= 8
    # at least one renewal, and about one per three beats, never one per beat (a loaded machine
    # may run fewer beats than the 0.1 s schedule: the ratio, not the count, is the behaviour)
    assert renewals >= 1 and renewals * 3 <= len(beats) + 3
    assert last(stack, stack.issue, "IssueProcessed")  # the lease never lapsed under the run


def test_assume_role_failure_is_processing_failed_not_a_verdict(stack):
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "true"))
    worker = make_worker(stack)

    class BrokenSts:
        def assume_role(self, **kw):
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    worker.sts = BrokenSts()
    assert worker.poll_once() == "failed"
    failed = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert failed["retryable"] is True and "cannot assume" in failed["error"]
    assert "IssueProcessed" not in types(stack, stack.issue)
    assert stack.pool.get(stack.member).status == AVAILABLE


def test_results_bucket_down_is_processing_failed(stack):
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "true"))
    stack.settings = replace(stack.settings, results_bucket="no-such-results-bucket")
    assert make_worker(stack).poll_once() == "failed"
    assert last(stack, stack.issue, "IssueProcessingFailed")["data"]["error"].startswith("results_unavailable")


def test_stop_mid_run_records_interrupted_gives_the_account_back_and_requeues(stack):
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "sleep 30"))
    worker = make_worker(stack, limits=Limits(timeout_s=60, kill_grace_s=0.2))
    threading.Timer(0.8, worker.request_stop).start()
    assert worker.poll_once() == "interrupted"
    failed = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert (failed["error"], failed["retryable"]) == ("interrupted", True)
    assert stack.pool.get(stack.member).status == AVAILABLE
    assert len(visible(stack, stack.settings.issue_queue_url)) == 1


def test_plugged_processor_is_loaded_and_used(stack):
    register(stack, [stack.member])
    queue_issue(stack, "anything")
    proc = load_processor("tests.test_worker_loop:fixed_processor")
    assert make_worker(stack, processor=proc).poll_once() == "not_reproduced"
    assert last(stack, stack.issue, "IssueProcessed")["data"]["message"] == "plug-in says fine"


def fixed_processor(job):
    assert job.credentials()["AWS_SESSION_TOKEN"]
    return Outcome("not_reproduced", "plug-in says fine", exit_code=0, log="ok\n")


def test_processor_raising_aws_error_is_retryable_failure(stack):
    register(stack, [stack.member])
    queue_issue(stack, "anything")

    def flaky(job):
        raise AwsError("S3 is down")

    assert make_worker(stack, processor=flaky).poll_once() == "failed"
    assert last(stack, stack.issue, "IssueProcessingFailed")["data"]["retryable"] is True


def test_cleanup_failure_leaves_the_account_cleaning_for_the_queue(stack):
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "true"))

    def failing(job):
        raise RuntimeError("stack stuck")

    make_worker(stack, cleaner=failing).poll_once()
    assert stack.pool.get(stack.member).status == CLEANING


def test_member_credentials_use_external_id_lease_session_name_and_refresh_before_expiry():
    from worker.credentials import MemberCredentials, session_name, session_seconds

    calls = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    class FakeSts:
        def assume_role(self, **kw):
            calls.append(kw)
            return {"Credentials": {"AccessKeyId": f"ASIA{len(calls)}", "SecretAccessKey": "s",
                                    "SessionToken": "t", "Expiration": now[0] + timedelta(seconds=900)}}

    creds = MemberCredentials(FakeSts(), role_arn="arn:aws:iam::210987654321:role/gip-processing",
                              external_id="ext-1", lease_id="3f1c-lease", worker="w/1",
                              duration_s=session_seconds(300), clock=lambda: now[0])
    assert creds.get()["AWS_ACCESS_KEY_ID"] == "ASIA1"
    assert calls[0] == {"RoleArn": "arn:aws:iam::210987654321:role/gip-processing", "ExternalId": "ext-1",
                        "RoleSessionName": "gip-3f1c-lease-w-1", "DurationSeconds": 900}
    now[0] += timedelta(seconds=500)
    assert creds.get()["AWS_ACCESS_KEY_ID"] == "ASIA1"  # still fresh: no new AssumeRole
    now[0] += timedelta(seconds=150)
    assert creds.get()["AWS_ACCESS_KEY_ID"] == "ASIA2"  # within 5 min of expiry: refreshed
    assert len(session_name("x" * 80)) == 64
    assert session_seconds(3 * 3600) == 3600 and session_seconds(60) == 900


@pytest.mark.parametrize(("extra", "line"), [
    ({}, "error: ISSUE_QUEUE_URL is not set: the worker has no queue to read"),
    ({"ISSUE_QUEUE_URL": "http://q", "LEASE_SECONDS": "15m"}, "error: LEASE_SECONDS must be a whole number, not '15m'"),
])
def test_python_m_worker_misconfigured_exits_1_with_one_line(extra, line):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(root), **extra}
    done = subprocess.run([sys.executable, "-m", "worker"], cwd="/tmp", env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == line


def test_a_retryable_failure_is_retried_until_max_attempts_then_recorded_as_final(stack):
    register(stack, [stack.member])
    queue_issue(stack, "anything")

    def flaky(job):
        raise AwsError("S3 is down")

    worker = make_worker(stack, processor=flaky, max_attempts=2)
    assert worker.poll_once() == "failed"
    first = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert (first["attempt"], first["retryable"]) == (1, True)
    assert visible(stack, stack.settings.issue_queue_url) == []  # hidden by its backoff
    _unhide(stack)  # what time passing does
    assert worker.poll_once() == "failed"
    final = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert (final["attempt"], final["retryable"]) == (2, False)
    assert "gave up after 2 attempts" in final["error"]
    assert visible(stack, stack.settings.issue_queue_url) == []


def _unhide(stack):
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].queues[stack.settings.issue_queue_url.rsplit("/", 1)[1]]
    for message in queue._messages:
        message.change_visibility(0)


def test_message_action_decisions():
    from gip.domain.issue import Issue

    def issue(**kw):
        return Issue(stream="issue-o/r#1", repo="o/r", number=1, version=5, **{"status": "QUEUED", "run": 2, **kw})

    assert message_action(None, 1, max_attempts=3).kind == "drop"
    assert message_action(issue(), 1, max_attempts=3).reason.startswith("stale message")
    assert message_action(issue(), 2, max_attempts=3).kind == "process"
    assert message_action(issue(status="RUNNING"), 2, max_attempts=3).kind == "wait"
    assert message_action(issue(status="SKIPPED", reason="closed"), 2, max_attempts=3).kind == "drop"
    failed = {"status": "FAILED", "retryable": True, "attempt": 3}
    assert message_action(issue(**failed, error="timed_out"), 2, max_attempts=3).kind == "drop"
    assert message_action(issue(**failed, error="interrupted"), 2, max_attempts=3).kind == "process"
    assert message_action(issue(**{**failed, "attempt": 1}, error="timed_out"), 2, max_attempts=3).kind == "process"
    assert message_action(issue(status="FAILED", retryable=False, error="x"), 2, max_attempts=3).kind == "drop"


def test_lease_taken_away_mid_run_stops_the_child_and_fails_the_run_if_nobody_did(stack):
    # GIVEN a long snippet; the account is deregistered under it (lifecycle) without failing the run
    register(stack, [stack.member])
    queue_issue(stack, _fence("sh", "sleep 30"))
    stack.pool.lease_seconds, saved = 0.6, stack.pool.lease_seconds
    try:
        from gip.domain.envelope import Cause
        def deregister():
            from gip.errors import ConcurrencyConflict
            for _ in range(20):  # it races with the heartbeat's renewals, like the real one would
                try:
                    return stack.pool.deregister(stack.member, reason="closed", cause=Cause("t", "org"))
                except ConcurrencyConflict:
                    continue

        threading.Timer(0.5, deregister).start()
        started = datetime.now(UTC)
        # WHEN the heartbeat's renewal is refused
        assert make_worker(stack, heartbeat_s=0.1, limits=Limits(timeout_s=60, kill_grace_s=0.2)).poll_once() == "lost_lease"
    finally:
        stack.pool.lease_seconds = saved
    # THEN the child was stopped at once, the run failed retryable, and the message is back
    assert datetime.now(UTC) - started < timedelta(seconds=10)
    failed = last(stack, stack.issue, "IssueProcessingFailed")["data"]
    assert (failed["error"], failed["retryable"]) == ("lease_lost", True)
    assert len(visible(stack, stack.settings.issue_queue_url)) == 1


# ---------------------------------------------------------------- redaction in every sink


class RotatingSts:
    """AssumeRole answers that expire at once: every ``credentials()`` call re-assumes the role
    and hands the run new values (the refresh path), drawn by hypothesis."""

    def __init__(self, sets: list[tuple[str, str, str]]) -> None:
        self.sets, self.calls = sets, 0

    def assume_role(self, **kw):
        key, secret, token = self.sets[self.calls % len(self.sets)]
        self.calls += 1
        return {"Credentials": {"AccessKeyId": key, "SecretAccessKey": secret, "SessionToken": token,
                                "Expiration": datetime.now(UTC)}}


_RESIDUE: list[list[str]] = []


def _residue_once(job) -> list[str]:
    """The real residue check on the module's first example, then its answer: no run touches the
    accounts of these examples (the processor only returns text), so each sweep finds the same."""
    from worker.cleaning.residue import find_residue

    if not _RESIDUE:
        _RESIDUE.append(list(find_residue(job)))
    assert _RESIDUE[0] == []
    return _RESIDUE[0]


def _run_planted(shared, *, held: str, sets, log_of) -> dict[str, str]:
    """One issue through the real worker loop with a processor whose log is ``log_of(handed)``;
    returns every sink: the event data, result.json, the S3 log and the rendered comment."""
    from gip.domain.comment import render_status
    from gip.services.notifier import plan_for
    from tests.worker_env import member_ids as ids
    from tests.worker_env import queue_issue as queue

    empty_tables(shared, pool=True)  # each example on empty tables (see ``stack``)
    n = next(_numbers)
    attrs = {"VisibilityTimeout": "30"}
    shared.settings = replace(
        shared.settings, results_bucket="wk-results",
        issue_queue_url=shared.sqs.create_queue(QueueName=f"wk-red-{n}", Attributes=attrs)["QueueUrl"],
        cleanup_queue_url=shared.sqs.create_queue(QueueName=f"wk-redc-{n}", Attributes=attrs)["QueueUrl"])
    member = ids(1, start=5000 + n)[0]
    register(shared, [member])
    queue(shared, "anything", number=n)

    def processor(job):
        handed = [job.credentials(), job.credentials()]  # the second one is a refresh
        log = log_of([v for c in handed for k, v in c.items() if k != "AWS_CREDENTIAL_EXPIRATION"])
        return Outcome("reproduced", f"the run printed {log[-300:]}", exit_code=1, command=f"sh -c {log[:200]!r}",
                       log=log, details={"seen": log[:500]})

    # the account's cleaning is not a sink here: a cleaner with nothing to remove, and the residue
    # check's answer (each sweep of every service was ~45% of an example's CPU)
    worker = make_worker(shared, processor=processor, environ={"GITHUB_WEBHOOK_SECRET": held},
                         cleaner=lambda job: [], residue=_residue_once)
    worker.sts = RotatingSts(sets)
    stream = issue_stream("octo/demo", n)
    assert worker.poll_once() == "reproduced"
    event = last(shared, stream, "IssueProcessed")
    result_raw = shared.s3.get_object(Bucket="wk-results", Key=event["data"]["result_uri"].split("/", 3)[3])
    result_text = result_raw["Body"].read().decode()
    plan = plan_for(shared.issues.get("octo/demo", n), event["data"])
    assert plan.status is not None
    return {"event": "\n".join(str(v) for v in event["data"].values()),
            "result.json": result_text + "\n".join(str(v) for v in json.loads(result_text).values()),
            "s3 log": _log(shared, json.loads(result_text)),
            "comment": render_status(plan.status)}


def _creds() -> st.SearchStrategy[tuple[str, str, str]]:
    key = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map("ASIA".__add__)
    return st.tuples(key, exact_values(), exact_values())


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(planted=families(), held=exact_values(), sets=st.lists(_creds(), min_size=2, max_size=2),
       before=fillers(200), target=st.sampled_from(["planted", "handed", "held"]),
       pick=st.integers(0, 5), into=st.integers(0, 500))
def test_no_planted_secret_reaches_any_sink_even_split_by_the_tail_cut(
        shared, planted, held, sets, before, target, pick, into):
    # GIVEN output with a pattern secret, every credential value handed to the run (refreshed
    # ones too) and a secret the worker holds; one of them straddles the 4,000-character tail cut
    def log_of(handed: list[str]) -> str:
        texts = {"planted": planted.text, "handed": handed[pick % len(handed)], "held": held}
        cut_into = into % (len(texts[target]) + 1)
        others = " ".join(v for k, v in texts.items() if k != target) + " " + " ".join(handed)
        return before + others + "\n" + texts[target] + "y" * (4000 - len(texts[target]) + cut_into)

    # WHEN the worker runs it
    sinks = _run_planted(shared, held=held, sets=sets, log_of=log_of)
    # THEN no sink holds any piece of any of them
    secrets = [planted.secret, held, *(v for s in sets for v in s)]
    found = {(name, s): leaks(text, s, around=before) for name, text in sinks.items() for s in secrets}
    TALLY["cases"] += 1
    TALLY["sinks"] += len(found)
    TALLY["found"] += sum(bool(v) for v in found.values())
    assert {k: v for k, v in found.items() if v} == {}


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(planted=families(), held=exact_values(), sets=st.lists(_creds(), min_size=1, max_size=1),
       target=st.sampled_from(["planted", "handed", "held"]), edge=st.sampled_from(["head", "tail"]),
       pick=st.integers(0, 5), into=st.integers(0, 500))
def test_no_planted_secret_reaches_any_sink_when_the_65536_output_cap_cuts_it(
        shared, planted, held, sets, target, edge, pick, into):
    # GIVEN the runner's own output cap (65,536 bytes: the head and tail halves are kept) cutting
    # right through a secret, before the worker ever sees the text
    import io

    from worker.runner import _Capture

    def log_of(handed: list[str]) -> str:
        secret = {"planted": planted.text, "handed": handed[pick % len(handed)], "held": held}[target]
        at = 1 + into % (len(secret) - 1)
        half = 65_536 // 2
        if edge == "head":  # the head half ends inside the secret
            raw = "a" * (half - at) + secret + "b" * 70_000
        else:  # the tail half starts inside it
            raw = "a" * 70_000 + secret + "b" * (half - (len(secret) - at))
        capture = _Capture(65_536)
        capture.drain(io.BufferedReader(io.BytesIO(raw.encode())))
        assert capture.dropped  # the cap did cut
        return capture.text()

    sinks = _run_planted(shared, held=held, sets=sets, log_of=log_of)
    secrets = [planted.secret, held, *sets[0]]
    found = {(name, s): leaks(text, s) for name, text in sinks.items() for s in secrets}
    TALLY["cases"] += 1
    TALLY["sinks"] += len(found)
    TALLY["found"] += sum(bool(v) for v in found.values())
    assert {k: v for k, v in found.items() if v} == {}


def test_a_real_snippet_running_env_leaves_no_credential_in_any_sink(stack):
    # GIVEN a real child that prints its environment (the member session) and its output is
    # capped at 65,536 bytes right through the session token
    register(stack, [stack.member])
    code = ("import os, sys\nt = os.environ['AWS_SESSION_TOKEN']\n"
            "sys.stdout.write('x' * (32768 - 10) + t + 'y' * 70000 + '\\n')\n"
            "for k, v in sorted(os.environ.items()):\n    print(f'{k}={v}')\n")
    queue_issue(stack, _fence("python", code))
    handed = []
    worker = make_worker(stack, limits=Limits(timeout_s=20, output_cap=65_536))
    member = worker._member

    def spy(lease):
        creds = member(lease)
        handed.append(creds)
        return creds

    worker._member = spy
    assert worker.poll_once() == "not_reproduced"
    event = last(stack, stack.issue, "IssueProcessed")
    result = _result(stack, event)
    values = [v for k, v in handed[0].get().items() if k != "AWS_CREDENTIAL_EXPIRATION"]
    log = _log(stack, result)
    assert "bytes of output dropped" in log and "AWS_REGION=us-east-1" in log  # the output is there
    for sink in (json.dumps(event["data"]), json.dumps(result), log):
        for value in values:
            assert leaks(sink, value) == []
