"""What an Organizations event (CloudTrail through EventBridge) means for one account: pure.

``classify(event) -> OrgChange``: which account, joined / left / moved / ignored. The pipeline
it feeds is described in ``handlers/org_events.py``.
Event shapes: https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gip.domain.envelope import ACCOUNT_RE

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


def classify(event: Mapping[str, object]) -> OrgChange:
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


def _obj(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _account_party(handshake: Mapping[str, object]) -> str:
    parties = handshake.get("parties")
    for party in parties if isinstance(parties, list) else []:
        if isinstance(party, Mapping) and party.get("type") == "ACCOUNT":
            return str(party.get("id") or "")
    return ""


def _find_account(value: object) -> str:
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


