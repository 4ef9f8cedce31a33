"""PURE decisions of the message loop: what a message is, what to do with it, how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass

from gip.domain.issue import FAILED, PROCESSED, QUEUED, SKIPPED, Issue

PROCESS, DROP, WAIT = "process", "drop", "wait"
SQS_MAX_VISIBILITY = 43_200


@dataclass(frozen=True)
class Action:
    """What to do with an issue message, and why (logged)."""

    kind: str  # process | drop | wait
    reason: str


def message_action(issue: Issue | None, run: int, *, max_attempts: int) -> Action:
    """Re-check the issue's stream before doing any work for ``run``."""
    if issue is None:
        return Action(DROP, "unknown issue")
    if issue.run != run:
        return Action(DROP, f"stale message: run {run}, the issue is at run {issue.run}")
    if issue.status == SKIPPED:
        return Action(DROP, f"skipped ({issue.reason})")
    if issue.status == PROCESSED:
        return Action(DROP, "redelivery: run already processed")
    if issue.status == FAILED:
        if not issue.retryable:
            return Action(DROP, f"run failed for good ({issue.error})")
        if issue.attempt >= max_attempts and issue.error != "interrupted":
            # an interrupted run (SIGTERM: scale-in, deploy) is not the run's fault; those
            # returns are bounded by the queue's maxReceiveCount instead
            return Action(DROP, f"run failed {issue.attempt} times ({issue.error}); a /retry starts a new run")
        return Action(PROCESS, f"retry after {issue.error}")
    if issue.status == QUEUED:
        return Action(PROCESS, "queued")
    # RUNNING: a live worker holds it, or a dead one that the sweeper will time out.
    return Action(WAIT, f"issue is {issue.status}")


def backoff_seconds(receive_count: int, *, base: float, cap: float, rng: random.Random) -> int:
    """Exponential backoff with equal jitter, from the message's ApproximateReceiveCount.

    The wait doubles with every receive, so an empty pool spends the queue's maxReceiveCount
    slowly (base·(2^n - 1) seconds in total) rather than one receive per poll.
    """
    step = min(cap, base * 2 ** max(0, receive_count - 1))
    return int(min(SQS_MAX_VISIBILITY, step / 2 + rng.uniform(0, step / 2)))
