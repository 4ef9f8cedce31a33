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

Stuck runs (issue 19 §2): whatever stranded it (a gatekeeper record in its DLQ, an issue message
in the issue DLQ), a run still RECEIVED after ``STUCK_RECEIVED_S`` (1 h: the gatekeeper's queue
gives up after 5 x 180 s) or still QUEUED after ``STUCK_QUEUED_S`` (24 h: a busy pool keeps runs
queued for hours, not a day) is ended with ``IssueSkipped`` reason ``stuck_received`` /
``stuck_queued`` (and a ``detail``), so the issue can be triggered again. Found by one scan
of the issues table (no index: the table holds one row per issue ever triggered).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gip.domain.envelope import Cause, parse_iso, split_issue_stream
from gip.domain.issue import QUEUED, RECEIVED, RUNNING, Issue
from gip.domain.pool import Account
from gip.errors import ConcurrencyConflict, IllegalTransition
from gip.services.issues import Issues
from gip.services.pool import Pool

log = logging.getLogger(__name__)
ACTOR = "sweeper"
STUCK_RECEIVED_S = 3600
STUCK_QUEUED_S = 86_400


def sweep(pool: Pool, issues: Issues, *, now: datetime, hard_cap_seconds: int,
          max_attempts: int = 3, stuck_received_s: int = STUCK_RECEIVED_S,
          stuck_queued_s: int = STUCK_QUEUED_S) -> dict[str, Any]:
    """Time out every stale lease, end every stuck run; returns what was done.

    The failed run is retryable unless it was the last attempt the workers allow
    (``MAX_ATTEMPTS``): then nobody will retry it, and the event says so."""
    timed_out, skipped = [], []
    for account in pool.stale_leases(now=now, hard_cap_seconds=hard_cap_seconds):
        if _time_out(pool, issues, account, max_attempts):
            timed_out.append(account.account_id)
        else:
            skipped.append(account.account_id)
    ended = end_stuck_runs(issues, now=now, bounds={RECEIVED: stuck_received_s, QUEUED: stuck_queued_s})
    return {"timed_out": timed_out, "skipped": skipped, "ended": ended}


def stuck_reason(issue: Issue, *, now: datetime, bounds: dict[str, int]) -> dict[str, Any] | None:
    """Pure: the IssueSkipped data ending ``issue``'s run if it waited past its bound."""
    bound = bounds.get(issue.status)
    since = issue.updated_at or issue.received_at
    if bound is None or not since:
        return None
    waited = (now - parse_iso(since)).total_seconds()
    if waited < bound:
        return None
    stage = "a gatekeeper decision" if issue.status == RECEIVED else "a worker"
    return {"reason": f"stuck_{issue.status.lower()}", "run": issue.run,
            "detail": f"{issue.status} for {int(waited)}s without {stage} (bound {bound}s); "
                      "look in the DLQ, then trigger the issue again"}


def end_stuck_runs(issues: Issues, *, now: datetime, bounds: dict[str, int]) -> list[str]:
    """``IssueSkipped`` for every run stuck past its bound; a run that moved on is left alone."""
    ended: list[str] = []
    for issue in issues.store.issues():  # one scan per sweep: the issues table has no status index
        data = stuck_reason(issue, now=now, bounds=bounds)
        if data is None:
            continue
        repo, number = split_issue_stream(issue.stream)
        cause = Cause(correlation_id=issue.correlation_id or f"sweep-{issue.stream}", actor=ACTOR)
        try:
            issues.record(repo, number, "IssueSkipped", data, cause=cause, expected=issue)
        except (ConcurrencyConflict, IllegalTransition) as exc:
            log.info("run %s of %s moved on (%s): left alone", issue.run, issue.stream, exc)
            continue
        log.warning("run %s of %s ended: %s", issue.run, issue.stream, data["detail"])
        ended.append(issue.stream)
    return ended


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
