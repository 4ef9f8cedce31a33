"""Single-owner cleaning with real processes: two ``python -m worker`` against a moto SERVER, and
the bus rule played by a thread that forwards every AccountReleased to the cleanup queue at once
(the race of issue 12: the releasing worker cleans directly while the message sends another)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from gip.domain.pool import AVAILABLE
from tests.worker_env import (
    make_stack,
    member_ids,
    queue_issue,
    register,
    send_event,
    start_worker_process,
)

pytestmark = pytest.mark.server
ISSUES = 3


def _start_worker(stack, endpoint: str, name: str, count_file: Path) -> subprocess.Popen:
    return start_worker_process(stack, endpoint, name, CLEANER="tests.fakes.counting_cleaner:clean",
                                COUNT_FILE=str(count_file), CLEAN_DELAY="4", CLEANUP_CLAIM_SECONDS="10",
                                NUKE="off")


class Bus(threading.Thread):
    """What the `<prefix>-cleanup` rule does: every AccountReleased goes to the cleanup queue."""

    def __init__(self, stack, members: list[str]) -> None:
        super().__init__(daemon=True)
        self.stack, self.members, self.sent, self.done = stack, members, set(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for member in self.members:
                for event in self.stack.store.read(f"account-{member}"):
                    if event["type"] == "AccountReleased" and event["event_id"] not in self.sent:
                        self.sent.add(event["event_id"])
                        send_event(self.stack, self.stack.settings.cleanup_queue_url, event)


def _queue_empty(stack) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.settings.cleanup_queue_url, AttributeNames=names)
    return all(attrs["Attributes"].get(name, "0") == "0" for name in names)


def test_one_lease_gets_exactly_one_cleaning_with_two_worker_processes(moto_server, tmp_path):
    # GIVEN two accounts, three queued issues, two worker processes and the bus rule
    stack = make_stack(moto_server, prefix="e2eclean")
    members = member_ids(2, start=700)
    register(stack, members)
    for number in range(1, ISSUES + 1):
        queue_issue(stack, "no code here", number=number)
    count_file = tmp_path / "cleanings.jsonl"
    bus = Bus(stack, members)
    bus.start()
    procs = [_start_worker(stack, moto_server, f"w{i}", count_file) for i in (1, 2)]
    try:
        # WHEN every run has finished and every cleanup message has been settled
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            leases = [e["data"]["lease_id"] for m in members for e in stack.store.read(f"account-{m}")
                      if e["type"] == "AccountReleased"]
            settled = all(stack.pool.get(m).status == AVAILABLE for m in members)
            if len(leases) == ISSUES and settled and len(bus.sent) == ISSUES and _queue_empty(stack):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("runs and cleanups did not settle in time")
    finally:
        bus.done.set()
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=30)[0].decode() for proc in procs]
        for i, out in enumerate(outputs, start=1):
            (tmp_path / f"w{i}.log").write_text(out)  # kept by pytest for a failure's post-mortem
    # THEN each lease was cleaned exactly once, by one process, and recorded once
    calls = [json.loads(line) for line in count_file.read_text().splitlines()]
    per_lease = Counter(call["lease"] for call in calls)
    assert set(per_lease) == set(leases)
    assert set(per_lease.values()) == {1}, (per_lease, calls, tmp_path)
    events = [e["type"] for m in members for e in stack.store.read(f"account-{m}")]
    assert events.count("AccountCleaned") == ISSUES
    assert "AccountCleanupFailed" not in events
    # AND the second cleaner really did come and back off (the race happened)
    backed_off = sum(out.count("is being cleaned by") for out in outputs)
    assert backed_off >= 1, outputs
    print(f"\ncleanings per lease: {dict(Counter(per_lease.values()))} over {len(leases)} leases; "
          f"back-offs: {backed_off}")
