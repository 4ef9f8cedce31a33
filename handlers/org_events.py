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

Organizations events are best-effort; ``handlers.reconcile`` repairs anything missed.
Event shapes: https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gip.domain.envelope import ACCOUNT_RE, Cause, split_issue_stream
from gip.domain.issue import RUNNING
from gip.errors import ConcurrencyConflict

log = logging.getLogger(__name__)

ORG_SOURCE = "organizations.amazonaws.com"
Kind = Literal["joined", "left", "moved", "ignored"]
LIVE_STATES = frozenset({"AVAILABLE", "RESERVED", "CLEANING", "QUARANTINED"})
GONE_STATES = {"SUSPENDED": "suspended", "PENDING_CLOSURE": "closed", "CLOSED": "closed"}

JOIN_EVENTS = ("CreateAccountResult", "InviteAccountToOrganization", "AcceptHandshake",
               "AccountJoinedOrganization")
LEAVE_EVENTS = {"RemoveAccountFromOrganization": "removed", "LeaveOrganization": "removed",
                "AccountDepartedOrganization": "removed", "CloseAccount": "closed",
                "CloseAccountResult": "closed"}


@dataclass(frozen=True)
class OrgChange:
    """What an Organizations event means for one account."""

    kind: Kind
    event_name: str
    account_id: str = ""
    reason: str = ""  # left: removed / closed / suspended; ignored: why
    source_parent: str = ""
    destination_parent: str = ""
    event_id: str = ""


# --------------------------------------------------------------------------- pure part


def classify(event: Mapping[str, Any]) -> OrgChange:
    """Read one EventBridge event (detail-type "AWS API Call via CloudTrail" or "AWS Service
    Event via CloudTrail") and say which account joined, left or moved. Never raises."""
    detail = event.get("detail") if isinstance(event, Mapping) else None
    if not isinstance(detail, Mapping):
        return OrgChange("ignored", "", reason="no detail")
    name = str(detail.get("eventName") or "")
    event_id = str(detail.get("eventID") or event.get("id") or "")

    def ignored(why: str) -> OrgChange:
        return OrgChange("ignored", name, reason=why, event_id=event_id)

    if detail.get("eventSource") != ORG_SOURCE:
        return ignored("not an Organizations event")
    if detail.get("errorCode"):
        return ignored(f"the call failed: {detail.get('errorCode')}")
    request = _obj(detail.get("requestParameters"))
    response = _obj(detail.get("responseElements"))
    service = _obj(detail.get("serviceEventDetails"))
    caller = str(_obj(detail.get("userIdentity")).get("accountId") or "")

    account = ""
    if name == "CreateAccountResult":
        status = _obj(service.get("createAccountStatus"))
        if status.get("state") != "SUCCEEDED":
            return ignored(f"account creation {status.get('state') or 'unknown'}")
        account = str(status.get("accountId") or "")
    elif name in ("InviteAccountToOrganization", "AcceptHandshake"):
        handshake = _obj(response.get("handshake"))
        if handshake.get("action", "INVITE") != "INVITE":
            return ignored(f"handshake {handshake.get('action')}")
        if name == "AcceptHandshake" and handshake.get("state", "ACCEPTED") != "ACCEPTED":
            return ignored(f"handshake {handshake.get('state')}")
        account = _account_party(handshake) or (caller if name == "AcceptHandshake" else "")
    elif name == "MoveAccount":
        return _valid(OrgChange("moved", name, str(request.get("accountId") or ""),
                                source_parent=str(request.get("sourceParentId") or ""),
                                destination_parent=str(request.get("destinationParentId") or ""),
                                event_id=event_id))
    elif name in ("RemoveAccountFromOrganization", "CloseAccount"):
        account = str(request.get("accountId") or "")
    elif name == "CloseAccountResult":
        status = _obj(service.get("closeAccountStatus"))
        if status.get("state", "SUCCEEDED") != "SUCCEEDED":
            return ignored(f"account closure {status.get('state')}")
        account = str(status.get("accountId") or "")
    elif name == "LeaveOrganization":
        account = caller or str(detail.get("recipientAccountId") or "")
    elif name in ("AccountJoinedOrganization", "AccountDepartedOrganization"):
        account = _find_account(service)
    else:
        return ignored("not a membership event")
    kind: Kind = "joined" if name in JOIN_EVENTS else "left"
    return _valid(OrgChange(kind, name, account, reason=LEAVE_EVENTS.get(name, ""), event_id=event_id))


def _valid(change: OrgChange) -> OrgChange:
    if not ACCOUNT_RE.match(change.account_id):
        return OrgChange("ignored", change.event_name, reason="no account id in the event",
                         event_id=change.event_id)
    return change


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _account_party(handshake: Mapping[str, Any]) -> str:
    for party in handshake.get("parties") or []:
        if isinstance(party, Mapping) and party.get("type") == "ACCOUNT":
            return str(party.get("id") or "")
    return ""


def _find_account(value: Any) -> str:
    """First 12-digit ``accountId`` anywhere in a service-event detail."""
    if isinstance(value, Mapping):
        found = value.get("accountId")
        if isinstance(found, str) and ACCOUNT_RE.match(found):
            return found
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_account(item)
            if found:
                return found
    return ""


def leave_reason(org_status: str) -> str | None:
    """``removed``/``closed``/``suspended`` for an Organizations account state, None if active."""
    return GONE_STATES.get(org_status)


# --------------------------------------------------------------------------- the Organization


@dataclass(frozen=True)
class OrgAccount:
    account_id: str
    status: str  # ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED, PENDING_ACTIVATION
    in_scope: bool = True


class Organization:
    """The few Organizations/STS reads the lifecycle needs (boto3 clients injected)."""

    def __init__(self, orgs: Any, sts: Any, *, role_name: str, external_id: str = "") -> None:
        self.orgs = orgs
        self.sts = sts
        self.role_name = role_name
        self.external_id = external_id
        self._management: str | None = None

    def management_account_id(self) -> str:
        """The organization's management account, which is never a pool member."""
        if self._management is None:
            try:
                self._management = self.orgs.describe_organization()["Organization"]["MasterAccountId"]
            except self.orgs.exceptions.AccessDeniedException:
                # We run in the management account; its identity needs no permission.
                self._management = self.sts.get_caller_identity()["Account"]
        return self._management

    def scope_accounts(self, target_ou_ids: tuple[str, ...]) -> dict[str, OrgAccount]:
        """Accounts under the target OUs (nested OUs included), or the whole org if none."""
        if not target_ou_ids:
            pages = self.orgs.get_paginator("list_accounts").paginate()
            return {a["Id"]: _org_account(a) for page in pages for a in page["Accounts"]}
        found: dict[str, OrgAccount] = {}
        for parent in self._ou_tree(target_ou_ids):
            pages = self.orgs.get_paginator("list_accounts_for_parent").paginate(ParentId=parent)
            found.update({a["Id"]: _org_account(a) for page in pages for a in page["Accounts"]})
        return found

    def _ou_tree(self, roots: tuple[str, ...]) -> list[str]:
        seen: list[str] = []
        todo = list(roots)
        while todo:
            parent = todo.pop()
            if parent in seen:
                continue
            seen.append(parent)
            pages = self.orgs.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent)
            todo.extend(ou["Id"] for page in pages for ou in page["OrganizationalUnits"])
        return seen

    def describe(self, account_id: str) -> OrgAccount | None:
        """DescribeAccount; None when the account is not (or no longer) in the organization."""
        try:
            return _org_account(self.orgs.describe_account(AccountId=account_id)["Account"])
        except self.orgs.exceptions.AccountNotFoundException:
            return None

    def parent_in_scope(self, parent_id: str, target_ou_ids: tuple[str, ...]) -> bool:
        """Is ``parent_id`` a target OU or below one? Everything is in scope without targets."""
        if not target_ou_ids:
            return True
        node = parent_id
        for _ in range(10):  # Organizations nests OUs at most five deep
            if node in target_ou_ids:
                return True
            if node.startswith("r-") or not node:
                return False
            parents = self.orgs.list_parents(ChildId=node)["Parents"]
            node = parents[0]["Id"] if parents else ""
        return False

    def account_in_scope(self, account_id: str, target_ou_ids: tuple[str, ...]) -> bool:
        if not target_ou_ids:
            return True
        parents = self.orgs.list_parents(ChildId=account_id)["Parents"]
        return bool(parents) and self.parent_in_scope(parents[0]["Id"], target_ou_ids)

    def role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.role_name}"

    def can_assume(self, account_id: str) -> bool:
        """Whether our processing role in the account can be assumed now (the stack is there)."""
        # The check only needs AssumeRole to succeed: a deny-all session policy makes the
        # credentials it returns worthless, so the lifecycle Lambdas never hold member rights.
        kwargs: dict[str, Any] = {"RoleArn": self.role_arn(account_id),
                                  "RoleSessionName": "gip-lifecycle-check", "DurationSeconds": 900,
                                  "Policy": DENY_ALL_SESSION_POLICY}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        try:
            self.sts.assume_role(**kwargs)
        except Exception as exc:  # AccessDenied is the expected "not yet": any failure means no
            log.info("cannot assume %s yet: %s", kwargs["RoleArn"], type(exc).__name__)
            return False
        return True


DENY_ALL_SESSION_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'
)


def _org_account(raw: Mapping[str, Any]) -> OrgAccount:
    # "State" (newer API) is finer than the legacy "Status" (no PENDING_CLOSURE/CLOSED there).
    return OrgAccount(account_id=str(raw["Id"]), status=str(raw.get("State") or raw.get("Status") or ""))


# --------------------------------------------------------------------------- the shell


def target_ou_ids_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    raw = (os.environ if env is None else env).get("TARGET_OU_IDS", "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


class Lifecycle:
    """Register / deregister through the core, failing a leased run when its account goes."""

    def __init__(self, pool: Any, issues: Any, org: Organization | None, *,
                 target_ou_ids: tuple[str, ...] = ()) -> None:
        self.pool = pool
        self.issues = issues
        self.org = org
        self.target_ou_ids = target_ou_ids

    @classmethod
    def from_settings(cls, settings: Any, *, session: Any = None) -> Lifecycle:
        import boto3

        from gip.services.issues import Issues
        from gip.services.pool import Pool

        sess = session or boto3.Session(region_name=settings.region)
        org = Organization(sess.client("organizations", endpoint_url=settings.endpoint_url),
                           sess.client("sts", endpoint_url=settings.endpoint_url),
                           role_name=settings.processing_role_name, external_id=settings.external_id)
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
        if data.get("issue") and data.get("lease_id"):
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


# --------------------------------------------------------------------------- Lambda entry

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
