"""Cleanup between leases: ONE code path for every account in CLEANING, ONE cleaner at a time.

It is reached two ways, both through :meth:`Cleanup.attempt`:

- directly, by the worker that just released the account;
- through the cleanup queue, fed by the bus rule on ``AccountReleased``, ``AccountTimedOut`` and
  ``AccountReinstated``; workers take those messages before issue messages.

An attempt first takes the account row's cleaning claim (``Pool.claim_cleaning``). If another
cleaner holds it, the attempt backs off (:class:`CleanupBusy`) and counts for nothing. With the
claim: run the cleaner, then the residue check. Clean → ``AccountCleaned``. Otherwise →
``AccountCleanupFailed`` (its attempt number is folded from the log), and on the
``max_attempts``-th failure in a row ``AccountQuarantined`` in the same transaction. Recording
the outcome also ends the claim. While the cleaner works, a heartbeat renews the claim every
third of its length, so a short claim covers a long aws-nuke run and a crashed cleaner's claim
lapses soon.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from gip.domain.envelope import Cause, Envelope, account_stream, parse_iso, utcnow
from gip.domain.pool import CLEANING, Account
from gip.domain.redaction import PATTERNS_ONLY
from gip.errors import AwsError, ConcurrencyConflict, GipError, IllegalTransition
from gip.services.pool import Claim, Pool
from worker.cleaning.builtin import short_error
from worker.cleaning.job import Cleaner, CleanupJob, Protection
from worker.cleaning.residue import find_residue

log = logging.getLogger(__name__)

CLEANED, QUARANTINED, NOT_NEEDED, RETRY = "cleaned", "quarantined", "not_needed", "retry"
CLEANUP_TYPES = ("AccountReleased", "AccountTimedOut", "AccountReinstated")
Credentials = Callable[[], Mapping[str, str]]


class CleanupFailed(GipError):
    """A cleanup attempt failed and will be retried."""

    def __init__(self, account_id: str, attempt: int, reason: str) -> None:
        self.account_id, self.attempt, self.reason = account_id, attempt, reason
        super().__init__(f"cleanup of account {account_id} failed (attempt {attempt}): {reason}")


class CleanupBusy(GipError):
    """Another cleaner holds the account's claim: come back in ``retry_after_s`` (not an attempt)."""

    def __init__(self, account_id: str, holder: str | None, retry_after_s: int) -> None:
        self.account_id, self.holder, self.retry_after_s = account_id, holder, retry_after_s
        super().__init__(f"account {account_id} is being cleaned by {holder}; retry in {retry_after_s}s")


@dataclass
class Cleanup:
    """Runs the cleaner with member credentials and records the outcome in the pool."""

    pool: Pool
    cleaner: Cleaner
    member_credentials: Callable[[str, str | None], Credentials]  # (role ARN, lease) → AWS_* getter
    regions: tuple[str, ...]
    protection: Protection
    max_attempts: int = 3
    claim_s: int = 300
    endpoint_url: str | None = None
    management_account: str = ""
    residue: Callable[[CleanupJob], list[str]] = find_residue
    clock: Callable[[], datetime] = utcnow
    wait_s: float = 600.0

    def attempt(self, account_id: str, *, lease_id: str | None, since: datetime | None,
                cause: Cause, wait_s: float | None = None) -> str:
        """Clean once. Returns cleaned / quarantined / not_needed; raises CleanupFailed (retry
        later, it counted) or CleanupBusy (retry later, it did not count)."""
        state = self.pool.get(account_id)
        if not _wanted(state, lease_id):
            return NOT_NEEDED
        assert state is not None
        claim = self.pool.claim_cleaning(state, owner=f"{cause.actor}#{uuid.uuid4().hex[:8]}", seconds=self.claim_s)
        if claim is None:
            return self._busy(account_id, lease_id)
        job = self._job(account_id, state.role_arn, lease_id, since, wait_s)
        removed: list[str] = []
        residue: list[str] = []
        try:
            with self._held(claim):
                removed = list(self.cleaner(job))
                residue = list(self.residue(job))
            error = f"{len(residue)} billable resource(s) left after cleaning" if residue else ""
        except Exception as exc:  # any cleaner failure is a failed attempt
            error = short_error(exc)
        if error:
            return self._failed(claim, error, residue, cause)
        try:
            self.pool.mark_cleaned(account_id, lease_id=lease_id, removed=removed, cause=cause, claim=claim)
        except (ConcurrencyConflict, IllegalTransition):
            return NOT_NEEDED  # our claim lapsed and another cleaner finished first
        log.info("account %s cleaned: removed %d resource(s)", account_id, len(removed))
        return CLEANED

    def _job(self, account_id: str, role_arn: str, lease_id: str | None, since: datetime | None,
             wait_s: float | None) -> CleanupJob:
        return CleanupJob(account_id=account_id, lease_id=lease_id, regions=self.regions,
                          credentials=self.member_credentials(role_arn, lease_id), protection=self._protection(role_arn),
                          since=since, until=self.clock(), endpoint_url=self.endpoint_url,
                          management_account=self.management_account,
                          wait_s=self.wait_s if wait_s is None else wait_s)

    def between(self, account_id: str, role_arn: str, lease_id: str, since: datetime | None) -> None:
        """Clean a still-leased account between matrix cells (issue 17, ``clean_between``): the
        cleaner and the residue check, no pool transition. A failure is :class:`AwsError`."""
        job = self._job(account_id, role_arn, lease_id, since, None)
        try:
            self.cleaner(job)
            residue = list(self.residue(job))
        except Exception as exc:
            raise AwsError(f"cleaning between matrix cells failed: {short_error(exc)}") from exc
        if residue:
            raise AwsError(f"cleaning between matrix cells left {len(residue)} resource(s)")

    @contextmanager
    def _held(self, claim: Claim) -> Iterator[None]:
        """Renew ``claim`` every third of its length until the block ends (a daemon thread)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.claim_s / 3):
                try:
                    if not self.pool.renew_claim(claim, seconds=self.claim_s):
                        log.warning("cleaning claim on %s was taken over", claim.account_id)
                        return
                except GipError as exc:  # keep cleaning; the outcome write checks the claim anyway
                    log.warning("cleaning claim renewal failed: %s", exc)

        keeper = threading.Thread(target=beat, daemon=True, name="claim")
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join(timeout=5)

    def _protection(self, role_arn: str) -> Protection:
        """Protect the role this account registered with (its name may differ from the default)."""
        name = role_arn.rsplit("/", 1)[-1] if role_arn else ""
        return replace(self.protection, role_name=name) if name else self.protection

    def _busy(self, account_id: str, lease_id: str | None) -> str:
        if not _wanted(self.pool.get(account_id), lease_id):
            return NOT_NEEDED  # the other cleaner finished in between
        holder, until = self.pool.claim_holder(account_id)
        left = (parse_iso(until) - self.clock()).total_seconds() if until else 0
        raise CleanupBusy(account_id, holder, int(min(max(left, 0) + 5, 43_000)))

    def _failed(self, claim: Claim, error: str, residue: list[str], cause: Cause) -> str:
        # Error text and residue names can carry what a run chose (names, messages): the
        # permanent record gets them redacted, like every other sink.
        error, residue = PATTERNS_ONLY(error), [PATTERNS_ONLY(name) for name in residue]
        attempt = claim.state.cleanup_failures + 1
        log.warning("cleanup of %s failed (attempt %d/%d): %s", claim.account_id, attempt, self.max_attempts, error)
        try:
            events = self.pool.cleanup_failed(claim, error=error, residue=residue, cause=cause,
                                              quarantine_after=self.max_attempts)
        except (ConcurrencyConflict, IllegalTransition):
            return NOT_NEEDED  # our claim lapsed and another cleaner owns the account now
        if events[-1]["type"] == "AccountQuarantined":
            return QUARANTINED
        raise CleanupFailed(claim.account_id, attempt, error)

    def from_event(self, event: Envelope, *, actor: str) -> str:
        """Handle one cleanup-queue event (idempotent)."""
        if event["type"] not in CLEANUP_TYPES:
            return NOT_NEEDED
        account_id = event["stream"].removeprefix("account-")
        lease_id = event["data"].get("lease_id") if event["type"] != "AccountReinstated" else None
        since = self.lease_start(account_id, lease_id, event)
        return self.attempt(account_id, lease_id=lease_id, since=since, cause=Cause.from_event(event, actor=actor))

    def lease_start(self, account_id: str, lease_id: str | None, event: Envelope) -> datetime | None:
        """When the lease began: from AccountTimedOut's data, else its AccountReserved event."""
        if not lease_id:
            return None
        if event["data"].get("reserved_at"):
            return parse_iso(event["data"]["reserved_at"])
        after = max(0, event.get("version", 0) - 200)
        for past in reversed(self.pool.store.read(account_stream(account_id), after=after)):
            if past["type"] == "AccountReserved" and past["data"].get("lease_id") == lease_id:
                return parse_iso(past["occurred_at"])
        return None


def _wanted(state: Account | None, lease_id: str | None) -> bool:
    return state is not None and state.status == CLEANING and state.cleaning_lease == lease_id
