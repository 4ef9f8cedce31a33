"""Local mode plays ECS and SQS on one clock (issue 14 §2): a dead worker is replaced up to the
configured count, and the queues' visibility timeouts are compressed like the lease."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import boto3
from moto import mock_aws

from gip.local.sqs_mappings import compress_visibility
from gip.local.workers import LOCAL, Workers, compressed

SLEEPER = (sys.executable, "-c", "import time; time.sleep(120)")


def test_a_killed_worker_is_replaced_within_seconds_and_never_beyond_the_count(tmp_path: Path) -> None:
    workers = Workers(count=2, env_for=lambda _name: {"PATH": os.environ.get("PATH", "")}, log_dir=tmp_path,
                      echo=lambda _line: None, command=SLEEPER)
    workers.start()
    try:
        first = workers.procs["local-worker-1"].pid
        os.kill(first, signal.SIGKILL)
        workers.procs["local-worker-1"].wait(timeout=10)
        notices: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not notices:
            notices += workers.replace_dead(time.monotonic())
            time.sleep(0.1)
        assert len(notices) == 1 and notices[0].startswith(
            "local-worker-1 exited with code -9; replaced with a new process, as ECS would (restart 1;")
        assert workers.procs["local-worker-1"].pid != first
        assert workers.alive() == 2 and len(workers.procs) == 2
        assert workers.replace_dead(time.monotonic() + 100) == []  # nobody else is dead
    finally:
        workers.stop(timeout_s=5)
    assert workers.alive() == 0
    assert workers.replace_dead(time.monotonic() + 100) == []  # stopped workers are not replaced


def test_a_worker_that_keeps_dying_is_restarted_less_and_less_often(tmp_path: Path) -> None:
    workers = Workers(count=1, env_for=lambda _name: {}, log_dir=tmp_path, echo=lambda _line: None,
                      command=(sys.executable, "-c", "raise SystemExit(3)"))
    workers.start()
    try:
        workers.procs["local-worker-1"].wait(timeout=10)
        assert workers.replace_dead(0.0) == []  # first death: due after 1 s
        assert len(workers.replace_dead(1.0)) == 1
        workers.procs["local-worker-1"].wait(timeout=10)
        assert workers.replace_dead(1.5) == [] and workers.replace_dead(3.0) == []  # due after 2 s more
        assert "restart 2;" in workers.replace_dead(3.6)[0]
    finally:
        workers.stop(timeout_s=5)


def test_the_clock_is_compressed_for_the_lease_the_heartbeat_and_the_queues() -> None:
    assert compressed(900) == int(LOCAL["LEASE_SECONDS"]) == 120
    assert int(LOCAL["VISIBILITY_SECONDS"]) == compressed(300) == 40
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        slow = sqs.create_queue(QueueName="issues", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
        quick = sqs.create_queue(QueueName="gatekeeper", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        assert compress_visibility(sqs, [slow, quick]) == {slow: 120, quick: 24}
        got = sqs.get_queue_attributes(QueueUrl=slow, AttributeNames=["VisibilityTimeout"])["Attributes"]
        assert got["VisibilityTimeout"] == "120"
