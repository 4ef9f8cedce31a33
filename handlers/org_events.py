"""Organizations events (CloudTrail through EventBridge) → pool lifecycle.

Pipeline, per SQS record (one EventBridge event each):

1. ``classify(event) -> OrgChange`` — pure: which account, joined / left / moved / ignored.
2. ``Lifecycle.apply(change)`` — the shell:
   - joined (CreateAccountResult SUCCEEDED, InviteAccountToOrganization, AcceptHandshake,
     AccountJoinedOrganization): the account is checked against the target OUs. The
     StackSet's auto-deployment creates the stack instance there, whose custom resource
     registers it; if the processing role can already be assumed we register it at once
     (source ``reconcile``). Outside the target OUs it is reported, never registered.
   - moved (MoveAccount): into a target OU → as joined; out of every target OU → deregistered.
   - left (RemoveAccountFromOrganization, LeaveOrganization, AccountDepartedOrganization,
     CloseAccount, CloseAccountResult) → ``AccountDeregistered`` at once. This never waits
     for the StackSet's Delete, which cannot run in a suspended account.
   A joined account found SUSPENDED / PENDING_CLOSURE / CLOSED by DescribeAccount is
   deregistered too.
3. A deregistered account that was leased: the core ends the lease; here the run gets
   ``IssueProcessingFailed`` (retryable). A deregistered account rejoins once it is back in
   scope and its processing role can be assumed again.

Organizations events are best-effort; ``gip.services.reconcile`` repairs anything missed.
Event shapes: https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from gip.domain.org_changes import classify
from gip.services.lifecycle import Lifecycle

log = logging.getLogger(__name__)


_LIFECYCLE: Lifecycle | None = None


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch of EventBridge events → partial batch failures."""
    global _LIFECYCLE
    if _LIFECYCLE is None:
        from gip.config import Settings

        _LIFECYCLE = Lifecycle.from_settings(Settings.from_env())
    return process_batch(_LIFECYCLE, event)


def process_batch(lifecycle: Lifecycle, event: Mapping[str, Any]) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            body = json.loads(record["body"])
        except (KeyError, TypeError, ValueError):
            log.error("org event %s is not JSON: dropped", record.get("messageId"))
            continue  # retrying cannot fix it
        try:
            change = classify(body)
            outcome = lifecycle.apply(change)
            log.info("%s %s: %s", change.event_name or "?", change.account_id or "-", outcome)
        except Exception as exc:  # one bad record must not fail its batch-mates
            log.error("org event %s failed: %s", record.get("messageId"), exc)
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}


handler = lambda_handler  # the name the templates use
