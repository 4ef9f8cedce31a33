"""The pure issue reducer: runs, activity, retries and stale events. No AWS."""

from __future__ import annotations

from typing import Any

import pytest

from gip.domain.envelope import Envelope
from gip.domain.issue import (
    FAILED,
    PROCESSED,
    QUEUED,
    RECEIVED,
    RUNNING,
    SKIPPED,
    Issue,
    evolve,
    fold,
)
from gip.errors import IllegalTransition

STREAM = "issue-octo/demo#7"


def ev(type_: str, version: int, **data: Any) -> Envelope:
    return Envelope(event_id=f"00000000-0000-4000-8000-{version:012d}", type=type_, schema_version=1,
                    stream=STREAM, version=version, occurred_at=f"2026-01-01T00:00:{version:02d}.000Z",
                    correlation_id=f"d{version}", causation_id=None, actor="t", data=data)


def received(version: int = 1, run: int = 1) -> Envelope:
    return ev("IssueReceived", version, repo="octo/demo", number=7, title="bug", labels=["x"],
              trigger="labeled", sender="alice", html_url="https://github.com/octo/demo/issues/7", run=run)


def run_to(status: str) -> Issue:
    s = evolve(None, received())
    if status == RECEIVED:
        return s
    s = evolve(s, ev("IssueQueued", 2, run=1, sender="alice", permission="write"))
    if status == QUEUED:
        return s
    s = evolve(s, ev("IssueProcessingStarted", 3, run=1, account_id="123456789012", lease_id="L", worker="w"))
    if status == RUNNING:
        return s
    if status == PROCESSED:
        return evolve(s, ev("IssueProcessed", 4, run=1, verdict="reproduced", exit_code=1,
                            duration_s=1.5, result_uri="s3://b/k"))
    return evolve(s, ev("IssueProcessingFailed", 4, run=1, error="timed_out", retryable=True, attempt=1))


def test_received_parses_the_stream_and_starts_run_one() -> None:
    s = run_to(RECEIVED)
    assert (s.repo, s.number, s.run, s.status, s.correlation_id) == ("octo/demo", 7, 1, RECEIVED, "d1")
    assert s.active


def test_a_full_run_ends_processed_with_the_verdict() -> None:
    s = run_to(PROCESSED)
    assert (s.status, s.verdict, s.exit_code, s.attempt) == (PROCESSED, "reproduced", 1, 1)
    assert not s.active


def test_active_issue_refuses_a_second_run() -> None:
    for status in (RECEIVED, QUEUED, RUNNING):
        state = run_to(status)
        with pytest.raises(IllegalTransition):
            evolve(state, received(version=state.version + 1, run=2))


def test_finished_issue_starts_the_next_run() -> None:
    s = evolve(run_to(PROCESSED), received(version=5, run=2))
    assert (s.run, s.status, s.verdict) == (2, RECEIVED, None)
    with pytest.raises(IllegalTransition):
        evolve(run_to(PROCESSED), received(version=5, run=3))  # runs are consecutive


def test_retryable_failure_can_start_again_and_counts_attempts() -> None:
    s = run_to(FAILED)
    assert s.awaiting_retry
    s = evolve(s, ev("IssueProcessingStarted", 5, run=1, account_id="123456789012", lease_id="L2", worker="w"))
    assert (s.status, s.attempt, s.error) == (RUNNING, 2, None)


def test_skip_only_while_waiting() -> None:
    assert evolve(run_to(QUEUED), ev("IssueSkipped", 3, reason="closed", run=1)).status == SKIPPED
    with pytest.raises(IllegalTransition):
        evolve(run_to(RUNNING), ev("IssueSkipped", 4, reason="closed", run=1))


def test_events_of_an_old_run_are_refused() -> None:
    s = evolve(run_to(PROCESSED), received(version=5, run=2))
    with pytest.raises(IllegalTransition, match="run 1 is not the current run 2"):
        evolve(s, ev("IssueQueued", 6, run=1, sender="a", permission="write"))


def test_processed_only_from_running() -> None:
    with pytest.raises(IllegalTransition):
        evolve(run_to(QUEUED), ev("IssueProcessed", 3, run=1, verdict="reproduced", exit_code=1,
                                  duration_s=1, result_uri="s3://b/k"))


def test_fold_by_stream() -> None:
    assert fold([received()])[STREAM].status == RECEIVED
