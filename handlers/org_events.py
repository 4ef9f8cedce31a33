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
from typing import TYPE_CHECKING, Any

from gip import observability
from gip.adapters.sqs_batch import BatchResponse, process_sqs_batch
from gip.container import once
from gip.domain.org_changes import classify
from gip.services.lifecycle import Lifecycle

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

log = logging.getLogger(__name__)


@once  # once per container
def _service() -> Lifecycle:
    from gip.config import Settings

    return Lifecycle.from_settings(Settings.from_env())


@observability.entry("org-events")
def lambda_handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """SQS batch of EventBridge events → partial batch failures."""
    return process_batch(_service(), event)


def process_batch(lifecycle: Lifecycle, event: Mapping[str, Any]) -> BatchResponse:
    """One ``lifecycle.apply`` per record; a record that raises is reported failed alone."""

    def record_handler(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except (KeyError, TypeError, ValueError):
            log.error("org event %s is not JSON: dropped", record.message_id)
            return  # retrying cannot fix it
        change = classify(body)
        # the correlation id the lifecycle gives the events it records (gip.services.lifecycle)
        with observability.log_keys(correlation_id=f"org-{change.event_id or change.account_id}",
                                    event_type=change.event_name, account_id=change.account_id):
            try:
                outcome = lifecycle.apply(change)
                log.info("%s %s: %s", change.event_name or "?", change.account_id or "-", outcome)
            except Exception as exc:
                log.error("org event %s failed: %s", record.message_id, exc)
                raise

    return process_sqs_batch(event, record_handler)


handler = lambda_handler  # the name the templates use
