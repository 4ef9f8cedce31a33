"""Cleanup between leases: ONE code path for every account in CLEANING.

It is reached two ways, both through :meth:`Cleanup.attempt`:

- directly, by the worker that just released the account (attempt 1);
- through the cleanup queue, fed by the bus rule on ``AccountReleased``, ``AccountTimedOut`` and
  ``AccountReinstated``; workers take those messages before issue messages. The attempt number
  comes from the message's ``ApproximateReceiveCount`` (plus one for ``AccountReleased``: the
  releasing worker has already tried once).

Success appends ``AccountCleaned`` (with what was removed); the ``max_attempts``-th failure
appends ``AccountQuarantined`` with the reason. A message for an account that is no longer
CLEANING for that lease is a no-op (the other path got there first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from handlers.core.envelope import Cause, Envelope, account_stream, parse_iso, utcnow
from handlers.core.errors import ConcurrencyConflict, GipError, IllegalTransition
from handlers.core.pool import CLEANING
from handlers.core.pool_service import Pool
from worker.cleaner import Cleaner, CleanupJob

log = logging.getLogger(__name__)

CLEANED, QUARANTINED, NOT_NEEDED, RETRY = "cleaned", "quarantined", "not_needed", "retry"
CLEANUP_TYPES = ("AccountReleased", "AccountTimedOut", "AccountReinstated")


class CleanupFailed(GipError):
    """A cleanup attempt failed and will be retried."""

    def __init__(self, account_id: str, attempt: int, reason: str) -> None:
        self.account_id, self.attempt, self.reason = account_id, attempt, reason
        super().__init__(f"cleanup of account {account_id} failed (attempt {attempt}): {reason}")


@dataclass
class Cleanup:
    """Runs the cleaner with member-role clients and records the outcome in the pool."""

    pool: Pool
    cleaner: Cleaner
    member_clients: Callable[[str, str | None], Callable[[str], Any]]  # (account, lease) → client()
    region: str
    max_attempts: int = 3
    clock: Callable[[], datetime] = utcnow

    def attempt(self, account_id: str, *, lease_id: str | None, since: datetime | None,
                attempt: int, cause: Cause, wait_s: float | None = None) -> str:
        """Clean once. Returns cleaned / quarantined / not_needed; raises CleanupFailed to retry."""
        state = self.pool.get(account_id)
        if state is None or state.status != CLEANING or state.cleaning_lease != lease_id:
            return NOT_NEEDED
        try:
            job = CleanupJob(account_id=account_id, lease_id=lease_id, region=self.region,
                             since=since, until=self.clock(),
                             client=self.member_clients(account_id, lease_id))
            if wait_s is not None:
                job = replace(job, wait_s=wait_s)
            removed = list(self.cleaner(job))
        except Exception as exc:  # any cleaner failure counts as a failed attempt
            reason = f"{type(exc).__name__}: {exc}"[:900]
            log.warning("cleanup of %s failed (attempt %d/%d): %s", account_id, attempt, self.max_attempts, reason)
            if attempt < self.max_attempts:
                raise CleanupFailed(account_id, attempt, reason) from exc
            return self._quarantine(account_id, attempt, reason, cause)
        try:
            self.pool.mark_cleaned(account_id, lease_id=lease_id, removed=removed, cause=cause)
        except (ConcurrencyConflict, IllegalTransition):
            return NOT_NEEDED  # the other path cleaned it a moment ago
        log.info("account %s cleaned: removed %d resource(s)", account_id, len(removed))
        return CLEANED

    def _quarantine(self, account_id: str, attempts: int, reason: str, cause: Cause) -> str:
        try:
            self.pool.quarantine(account_id, reason=f"cleanup failed {attempts} times: {reason}",
                                 attempts=attempts, cause=cause)
        except (ConcurrencyConflict, IllegalTransition):
            return NOT_NEEDED
        return QUARANTINED

    def from_event(self, event: Envelope, *, receive_count: int, actor: str) -> str:
        """Handle one cleanup-queue event (idempotent)."""
        if event["type"] not in CLEANUP_TYPES:
            return NOT_NEEDED
        account_id = event["stream"].removeprefix("account-")
        lease_id = event["data"].get("lease_id") if event["type"] != "AccountReinstated" else None
        attempt = receive_count + (1 if event["type"] == "AccountReleased" else 0)
        since = self.lease_start(account_id, lease_id, event)
        return self.attempt(account_id, lease_id=lease_id, since=since, attempt=attempt,
                            cause=Cause.from_event(event, actor=actor))

    def lease_start(self, account_id: str, lease_id: str | None, event: Envelope) -> datetime | None:
        """When the lease began: from AccountTimedOut's data, else its AccountReserved event."""
        if not lease_id:
            return None  # reinstated: no window, clean everything not protected
        if event["data"].get("reserved_at"):
            return parse_iso(event["data"]["reserved_at"])
        after = max(0, event.get("version", 0) - 200)
        for past in reversed(self.pool.store.read(account_stream(account_id), after=after)):
            if past["type"] == "AccountReserved" and past["data"].get("lease_id") == lease_id:
                return parse_iso(past["occurred_at"])
        return None
