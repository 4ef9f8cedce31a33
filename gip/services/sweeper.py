"""Sweeper (every 15 min, schedule or SQS): time out stale leases so no account stays lost.

Stale = past ``expires_at`` (no heartbeat), or reserved longer than the hard cap
(``LEASE_HARD_CAP_SECONDS``, 3 h) whatever the heartbeats. Both are found through the sparse
``by-expiry`` / ``by-reserved`` indexes: the read is O(stale), never O(pool).

For each: ``AccountTimedOut`` (RESERVED → CLEANING; the bus rule sends it to the cleanup queue),
then ``IssueProcessingFailed`` (retryable, ``timed_out``) on the run that held the lease; the
issue message, no longer kept invisible by a heartbeat, comes back and the run is retried.

The double-check is the conditional write: ``time_out`` is conditioned on the version the index
returned, so a lease renewed a moment ago (newer version) raises ConcurrencyConflict and is left
alone; one released meanwhile raises IllegalTransition and is left alone too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gip.domain.envelope import Cause, split_issue_stream
from gip.domain.issue import RUNNING, Issue
from gip.domain.pool import Account
from gip.errors import ConcurrencyConflict, IllegalTransition
from gip.services.issues import Issues
from gip.services.pool import Pool

log = logging.getLogger(__name__)
ACTOR = "sweeper"


def sweep(pool: Pool, issues: Issues, *, now: datetime, hard_cap_seconds: int,
          max_attempts: int = 3) -> dict[str, Any]:
    """Time out every stale lease; returns what was done (logged by the handler).

    The failed run is retryable unless it was the last attempt the workers allow
    (``MAX_ATTEMPTS``): then nobody will retry it, and the event says so."""
    timed_out, skipped = [], []
    for account in pool.stale_leases(now=now, hard_cap_seconds=hard_cap_seconds):
        if _time_out(pool, issues, account, max_attempts):
            timed_out.append(account.account_id)
        else:
            skipped.append(account.account_id)
    return {"timed_out": timed_out, "skipped": skipped}


def _time_out(pool: Pool, issues: Issues, account: Account, max_attempts: int) -> bool:
    lease_id = account.lease_id or ""
    issue = issues.get_stream(account.issue) if account.issue else None
    # the run's correlation id (its GitHub delivery) carries on, so the audit trail of the run
    # shows its timeout too
    correlation = issue.correlation_id if issue is not None and issue.correlation_id else f"sweep-{lease_id}"
    try:
        event = pool.time_out(account.account_id, lease_id=lease_id, expected=account,
                              cause=Cause(correlation_id=correlation, actor=ACTOR))
    except (ConcurrencyConflict, IllegalTransition) as exc:
        log.info("lease %s on %s moved on (%s): left alone", lease_id, account.account_id, exc)
        return False
    if issue is not None:
        _fail_run(issues, issue, account, Cause.from_event(event, actor=ACTOR), max_attempts)
    log.warning("lease %s on %s timed out (issue %s)", lease_id, account.account_id, account.issue)
    return True


def _fail_run(issues: Issues, issue: Issue, account: Account, cause: Cause, max_attempts: int) -> None:
    """IssueProcessingFailed(timed_out, retryable) on the run that held this lease, if still running."""
    if issue.status != RUNNING or issue.lease_id != account.lease_id:
        return
    repo, number = split_issue_stream(issue.stream)
    attempt = max(1, issue.attempt)
    data = {"run": issue.run, "error": "timed_out", "retryable": attempt < max_attempts, "attempt": attempt,
            "account_id": account.account_id, "lease_id": account.lease_id or ""}
    try:
        issues.record(repo, number, "IssueProcessingFailed", data, cause=cause, expected=issue)
    except (ConcurrencyConflict, IllegalTransition) as exc:
        log.info("run %s of %s ended meanwhile (%s)", issue.run, issue.stream, exc)
