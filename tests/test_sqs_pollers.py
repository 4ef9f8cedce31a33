"""Local mode's SQS event source mappings run several batches at once, like Lambda (issue 18).

Against moto in-process: concurrent pollers never hand one message to two invocations at once,
keep partial-batch failures in the queue, and take their number from the mapping's
``ScalingConfig.MaximumConcurrency`` (else Lambda's initial 5; a FIFO queue one at a time).
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gip.local.lambdas import Function
from gip.local.sqs_mappings import DEFAULT_CONCURRENCY, QueuePoller, concurrency_of, mapping_of

REGION = "us-east-1"
FUNCTION = Function(name="fn", arn="arn:aws:lambda:us-east-1:123456789012:function:fn", handler="x.handler")


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue(sqs: Any, name: str, bodies: list[str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain(poller: QueuePoller, done: threading.Event, stop: threading.Event, *, timeout: float = 30) -> None:
    poller.start()
    try:
        assert done.wait(timeout), "the pollers did not handle every message in time"
    finally:
        stop.set()
        poller.join(timeout=10)


def test_concurrent_pollers_never_hand_one_message_to_two_invocations_at_once(sqs: Any) -> None:
    bodies = [f"m{i}" for i in range(30)]
    url, arn = queue(sqs, "q", bodies)
    lock, active, seen = threading.Lock(), set(), Counter()
    overlaps, invocations_at_once, peak = [], [0], [0]
    done, stop = threading.Event(), threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ids = {r["messageId"] for r in event["Records"]}
        with lock:
            overlaps.extend(ids & active)
            active.update(ids)
            invocations_at_once[0] += 1
            peak[0] = max(peak[0], invocations_at_once[0])
        time.sleep(0.1)  # long enough for the other pollers to receive meanwhile
        with lock:
            active.difference_update(ids)
            invocations_at_once[0] -= 1
            seen.update(r["body"] for r in event["Records"])
            if set(seen) == set(bodies):
                done.set()
        return {"batchItemFailures": []}

    poller = QueuePoller(sqs=sqs, function=FUNCTION, handler=handler, queue_arn=arn, region=REGION,
                         batch_size=2, stop=stop, concurrency=3)
    drain(poller, done, stop)
    assert overlaps == []
    assert peak[0] >= 2  # the batches did run at the same time
    assert all(count == 1 for count in seen.values())  # each message handled once
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_concurrent_pollers_keep_partial_batch_failures_in_the_queue(sqs: Any) -> None:
    bodies = [f"ok{i}" for i in range(8)] + ["bad0", "bad1"]
    url, arn = queue(sqs, "q", bodies)
    lock, seen = threading.Lock(), Counter()
    done, stop = threading.Event(), threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        with lock:
            for r in event["Records"]:
                seen[r["body"]] += 1
                if r["body"].startswith("bad") and seen[r["body"]] == 1:  # fails its first time only
                    failures.append({"itemIdentifier": r["messageId"]})
            if all(seen[b] >= (2 if b.startswith("bad") else 1) for b in bodies):
                done.set()
        return {"batchItemFailures": failures}

    poller = QueuePoller(sqs=sqs, function=FUNCTION, handler=handler, queue_arn=arn, region=REGION,
                         batch_size=3, stop=stop, concurrency=3, retry_s=0)
    drain(poller, done, stop)
    assert {b: seen[b] for b in bodies} == {**{f"ok{i}": 1 for i in range(8)}, "bad0": 2, "bad1": 2}
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_a_message_received_again_while_another_invocation_holds_it_is_left_to_the_holder() -> None:
    poller = QueuePoller(sqs=None, function=FUNCTION, handler=lambda e, c: None, queue_arn="arn:aws:sqs:r:1:q",
                         region=REGION, batch_size=10, stop=threading.Event(), concurrency=2)
    first = poller._claim([{"MessageId": "a"}, {"MessageId": "b"}])
    again = poller._claim([{"MessageId": "b"}, {"MessageId": "c"}])
    assert [m["MessageId"] for m in first] == ["a", "b"]
    assert [m["MessageId"] for m in again] == ["c"]
    assert poller.overlaps == 1 and poller.in_flight == {"a", "b", "c"}


@pytest.mark.parametrize(("maximum", "arn", "expected"), [
    (2, "arn:aws:sqs:r:1:gatekeeper", 2),
    (None, "arn:aws:sqs:r:1:capacity", DEFAULT_CONCURRENCY),
    (4, "arn:aws:sqs:r:1:notifier.fifo", 1),
])
def test_concurrency_comes_from_the_mapping(maximum: int | None, arn: str, expected: int) -> None:
    assert concurrency_of(maximum, queue_arn=arn) == expected


def test_a_container_without_a_mapping_runs_one_batch_at_a_time(sqs: Any) -> None:
    _, arn = queue(sqs, "bare", [])
    stop = threading.Event()
    stop.set()
    poller = QueuePoller(sqs=sqs, function=FUNCTION, handler=lambda e, c: None, queue_arn=arn, region=REGION,
                         batch_size=10, stop=stop)
    poller.run()
    assert poller.concurrency == 1


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def test_the_poller_reads_maximum_concurrency_from_its_mapping(sqs: Any) -> None:
    _, arn = queue(sqs, "gate", [])
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    fn = lam.create_function(FunctionName="gate", Runtime="python3.12", Role=role, Handler="x.handler",
                             Code={"ZipFile": _zip()})["FunctionArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10,
                                    ScalingConfig={"MaximumConcurrency": 3})
    assert mapping_of(function_arn=fn, queue_arn=arn, region=REGION)["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert mapping_of(function_arn=fn, queue_arn=arn + "-other", region=REGION) is None
    stop = threading.Event()
    stop.set()  # run() resolves its concurrency, then its loops end at once
    poller = QueuePoller(sqs=sqs, function=Function(name="gate", arn=fn, handler="x.handler"),
                         handler=lambda e, c: None, queue_arn=arn, region=REGION, batch_size=10, stop=stop)
    poller.run()
    assert poller.concurrency == 3


def test_an_idle_mapping_keeps_one_poller_polling_and_wakes_the_others_for_work(sqs: Any) -> None:
    url, arn = queue(sqs, "idle", [])
    receives, lock = [0], threading.Lock()

    class Counting:  # the SQS client, counting receives (the requests an idle stack makes)
        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def receive_message(self, **kw: Any) -> Any:
            with lock:
                receives[0] += 1
            return sqs.receive_message(**kw)

    lock_seen, active, peak, handled = threading.Lock(), [0], [0], Counter()
    stop, done = threading.Event(), threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock_seen:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock_seen:
            active[0] -= 1
            handled.update(r["body"] for r in event["Records"])
            if len(handled) == 12:
                done.set()
        return {"batchItemFailures": []}

    poller = QueuePoller(sqs=Counting(), function=FUNCTION, handler=handler, queue_arn=arn, region=REGION,
                         batch_size=1, stop=stop, concurrency=5, wait_s=1, idle_s=1.0)
    poller.start()
    try:
        time.sleep(2.5)  # idle: one long poll a second, not five
        with lock:
            idle_receives = receives[0]
        assert idle_receives <= 4
        for i in range(12):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        assert done.wait(20)
        assert peak[0] >= 3  # the sleeping pollers joined in
        assert sorted(handled) == sorted(f"m{i}" for i in range(12)) and set(handled.values()) == {1}
    finally:
        stop.set()
        poller.join(timeout=10)


def test_the_sleeping_pollers_do_not_spin_once_the_work_is_over(sqs: Any) -> None:
    """After the last batch, once ``idle_s`` has passed, the other pollers wait for work; they
    do not loop while the first poller is still in its long poll (each loop checks demand)."""
    url, arn = queue(sqs, "spin", [])
    checks, lock = [0], threading.Lock()

    class Counting(QueuePoller):
        def _in_demand(self) -> bool:
            with lock:
                checks[0] += 1
            return super()._in_demand()

    stop, handled = threading.Event(), threading.Event()
    poller = Counting(sqs=sqs, function=FUNCTION, handler=lambda e, c: handled.set() or {"batchItemFailures": []},
                      queue_arn=arn, region=REGION, batch_size=1, stop=stop, concurrency=5, wait_s=1, idle_s=0.2)
    poller.start()
    try:
        sqs.send_message(QueueUrl=url, MessageBody="m")
        assert handled.wait(10)
        time.sleep(0.5)  # past idle_s: the first poller is in an empty long poll
        with lock:
            before = checks[0]
        time.sleep(1.0)
        with lock:
            during = checks[0] - before
        assert during <= 20, during  # four sleeping pollers, about one check a second each
    finally:
        stop.set()
        poller.join(timeout=10)
