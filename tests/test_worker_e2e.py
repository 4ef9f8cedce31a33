"""`python -m worker` in a real subprocess against a moto SERVER: SIGTERM and SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from gip.domain.pool import AVAILABLE
from gip.services.sweeper import sweep
from tests.worker_env import (
    ROLE,
    last,
    make_stack,
    make_worker,
    member_ids,
    queue_issue,
    register,
    send_event,
    start_worker_process,
    types,
    visible,
    wait_until,
)

pytestmark = pytest.mark.server


def _snippet(tmp: Path) -> str:
    """Creates a bucket in the member account, then hangs, unless it already ran once."""
    return f"""### Reproduction Steps

```python
import os, sys, time, boto3
marker = {str(tmp / 'ran-once')!r}
if os.path.exists(marker):
    print("second attempt: fine")
    sys.exit(0)
open(marker, "w").close()
boto3.client("s3").create_bucket(Bucket="made-by-the-run")
open({str(tmp / 'child.pid')!r}, "w").write(str(os.getpid()))
print("working...", flush=True)
time.sleep(120)
```
"""


def _start_worker(stack, endpoint: str, name: str, **extra: str) -> subprocess.Popen:
    # a token in the worker's environment, to show it never reaches the child
    return start_worker_process(stack, endpoint, name, GITHUB_TOKEN="ghp_never_in_the_child", **extra)


def _member_buckets(stack, member: str) -> set[str]:
    creds = stack.sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/{ROLE}", RoleSessionName="check")["Credentials"]
    s3 = boto3.client("s3", **stack.kw, aws_access_key_id=creds["AccessKeyId"],
                      aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return "Z" not in next(line for line in handle if line.startswith("State:")).split()[1]
    except FileNotFoundError:
        return False


def test_sigterm_mid_run_gives_everything_back_cleanly(moto_server, tmp_path):
    # GIVEN a worker process running a snippet that made a bucket in the member account
    stack = make_stack(moto_server, prefix="e2eterm")
    member = member_ids(1, start=500)[0]
    register(stack, [member])
    queue_issue(stack, _snippet(tmp_path), number=1)
    proc = _start_worker(stack, moto_server, "term-1")
    try:
        child = int(wait_until(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
                              what="the snippet to start"))
        assert "made-by-the-run" in _member_buckets(stack, member)
        # WHEN ECS stops the task
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode()
    # THEN it exits 0 well within the ECS stop timeout, the snippet is gone ...
    assert code == 0, output
    assert time.monotonic() - stopped_at < 25
    assert not _alive(child)
    # ... the run is failed-retryable "interrupted", the account released, cleaned and available ...
    issue = "issue-octo/demo#1"
    failed = last(stack, issue, "IssueProcessingFailed")["data"]
    assert (failed["error"], failed["retryable"]) == ("interrupted", True)
    assert types(stack, f"account-{member}")[-2:] == ["AccountReleased", "AccountCleaned"]
    assert stack.pool.get(member).status == AVAILABLE
    assert "s3:bucket/made-by-the-run" in last(stack, f"account-{member}", "AccountCleaned")["data"]["removed"]
    assert "made-by-the-run" not in _member_buckets(stack, member)
    # ... and the message is visible again at once
    assert len(visible(stack, stack.settings.issue_queue_url)) == 1


def test_sigkill_mid_run_is_recovered_by_the_sweeper_and_the_run_is_retried(moto_server, tmp_path):
    stack = make_stack(moto_server, prefix="e2ekill")
    member = member_ids(1, start=600)[0]
    register(stack, [member])
    queue_issue(stack, _snippet(tmp_path), number=2)
    proc = _start_worker(stack, moto_server, "kill-1", VISIBILITY_SECONDS="3", HEARTBEAT_SECONDS="1")
    try:
        child = int(wait_until(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
                              what="the snippet to start"))
        # WHEN the task dies hard (the container goes, with the snippet in it)
        proc.kill()
        proc.wait(timeout=10)
        os.killpg(child, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
    issue = "issue-octo/demo#2"
    print(proc.stdout.read().decode()[-3000:])  # the dead worker's log, shown if the test fails
    assert types(stack, issue)[-1] == "IssueProcessingStarted"
    # THEN the sweeper, once the lease has expired, times it out and fails the run retryable
    later = datetime.now(UTC) + timedelta(hours=1)
    assert sweep(stack.pool, stack.issues, now=later, hard_cap_seconds=3 * 3600)["timed_out"] == [member]
    failed = last(stack, issue, "IssueProcessingFailed")["data"]
    assert (failed["error"], failed["retryable"]) == ("timed_out", True)
    # AND the next worker cleans the account first (AccountTimedOut via the bus rule) ...
    send_event(stack, stack.settings.cleanup_queue_url, last(stack, f"account-{member}", "AccountTimedOut"))
    worker = make_worker(stack, name="w2", poll_wait_s=5)
    assert worker.poll_once() == "cleanup_cleaned"
    assert "made-by-the-run" not in _member_buckets(stack, member)
    # ... then retries the run once the dead worker's message visibility has lapsed
    outcome = wait_until(lambda: (lambda got: got if got != "idle" else None)(worker.poll_once()),
                        timeout=40, what="the message to return")
    assert outcome == "not_reproduced", types(stack, issue)
    processed = last(stack, issue, "IssueProcessed")["data"]
    assert processed["verdict"] == "not_reproduced"
    assert last(stack, issue, "IssueProcessingStarted")["data"]["attempt"] == 2
    assert stack.pool.get(member).status == AVAILABLE
    json.dumps(processed)  # the event is plain JSON
