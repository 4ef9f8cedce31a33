"""Register / deregister pool accounts as they join and leave the Organization (see
``handlers/org_events.py`` for the pipeline, ``gip/services/reconcile.py`` for the repair)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gip.adapters.organizations import Organization
from gip.domain.envelope import Cause, split_issue_stream
from gip.domain.issue import RUNNING
from gip.domain.org_changes import OrgChange, leave_reason
from gip.errors import ConcurrencyConflict

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.config import Settings
    from gip.services.issues import Issues
    from gip.services.pool import Pool

log = logging.getLogger(__name__)



def target_ou_ids_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    raw = (os.environ if env is None else env).get("TARGET_OU_IDS", "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


class Lifecycle:
    """Register / deregister through the core, failing a leased run when its account goes."""

    def __init__(self, pool: Pool, issues: Issues, org: Organization | None, *,
                 target_ou_ids: tuple[str, ...] = ()) -> None:
        self.pool = pool
        self.issues = issues
        self.org = org
        self.target_ou_ids = target_ou_ids

    @classmethod
    def from_settings(cls, settings: Settings, *, session: Any = None) -> Lifecycle:
        import boto3

        from gip.services.issues import Issues
        from gip.services.pool import Pool

        sess = session or boto3.Session(region_name=settings.region)
        org = Organization(sess.client("organizations", endpoint_url=settings.endpoint_url),
                           sess.client("sts", endpoint_url=settings.endpoint_url),
                           role_name=settings.processing_role_name, external_id=settings.external_id,
                           partition=sess.get_partition_for_region(settings.region))
        return cls(Pool.from_settings(settings), Issues.from_settings(settings), org,
                   target_ou_ids=target_ou_ids_from_env())

    def apply(self, change: OrgChange) -> str:
        """Act on one classified event; returns a short outcome for the log."""
        cause = Cause(correlation_id=f"org-{change.event_id or change.account_id}", actor="org-events")
        if change.kind == "left":
            return self._left(change.account_id, change.reason, cause)
        if change.kind == "joined":
            return self.ensure_member(change.account_id, cause=cause)
        if change.kind == "moved":
            assert self.org is not None
            into = self.org.parent_in_scope(change.destination_parent, self.target_ou_ids)
            was = self.org.parent_in_scope(change.source_parent, self.target_ou_ids)
            if into:
                return self.ensure_member(change.account_id, cause=cause)
            if was:
                return self._left(change.account_id, "removed", cause)
            return "moved outside the target OUs: nothing to do"
        return f"ignored: {change.reason}"

    def _left(self, account_id: str, reason: str, cause: Cause) -> str:
        event = self.deregister_account(account_id, reason=reason, cause=cause)
        return f"deregistered ({reason})" if event else "not a pool member"

    def ensure_member(self, account_id: str, *, cause: Cause) -> str:
        """The account should be in the pool: register it if its role works, else say why not."""
        assert self.org is not None
        if account_id == self.org.management_account_id():
            return "management account: never a pool member"
        account = self.org.describe(account_id)
        if account is None:
            return "not (yet) in the organization"
        reason = leave_reason(account.status)
        if reason:
            return self._left(account_id, reason, cause)
        if account.status != "ACTIVE":
            return f"account {account.status}: waiting"
        if not self.org.account_in_scope(account_id, self.target_ou_ids):
            return "needs attention: outside the target OUs, so no stack instance will be deployed"
        row = self.pool.get(account_id)
        if row is not None and row.status != "DEREGISTERED":  # a deregistered account may rejoin
            return f"already {row.status}"
        return self.register_if_assumable(account_id, cause=cause)

    def register_if_assumable(self, account_id: str, *, cause: Cause) -> str:
        assert self.org is not None
        if not self.org.can_assume(account_id):
            return "needs attention: processing role cannot be assumed (stack instance pending?)"
        event = self.pool.register(account_id, role_arn=self.org.role_arn(account_id),
                                   source="reconcile", cause=cause)
        return "registered" if event else "already registered"

    def deregister_account(self, account_id: str, *, reason: str, cause: Cause) -> Any:
        """``AccountDeregistered`` through the core (None if unknown or already deregistered).

        The core ends the lease and names it in the event; the run that held it is failed
        here (``IssueProcessingFailed``, retryable) so that it is retried on another account.
        """
        for attempt in range(3):  # a reserve/release may land between the read and the write
            try:
                event = self.pool.deregister(account_id, reason=reason, cause=cause)
                break
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
        data = event["data"] if event else {}
        if event is not None and data.get("issue") and data.get("lease_id"):
            self._fail_run(data["issue"], account_id, data["lease_id"], reason,
                           Cause.from_event(event, actor=cause.actor))
        return event

    def _fail_run(self, issue_stream: str, account_id: str, lease_id: str, reason: str,
                  cause: Cause) -> None:
        repo, number = split_issue_stream(issue_stream)
        for _ in range(3):  # another writer may append to the issue in between
            issue = self.issues.get(repo, number)
            if issue is None or issue.status != RUNNING or issue.lease_id != lease_id:
                return  # the run already ended (or moved on) by itself
            data = {"run": issue.run, "error": f"account {account_id} deregistered ({reason})",
                    "retryable": True, "attempt": max(1, issue.attempt),
                    "account_id": account_id, "lease_id": lease_id}
            try:
                self.issues.record(repo, number, "IssueProcessingFailed", data, cause=cause, expected=issue)
                return
            except ConcurrencyConflict:
                continue
        log.error("could not fail the run of %s after deregistering %s", issue_stream, account_id)


