"""Pure rules of the redelivery sweep: which webhook deliveries GitHub gave up on we ask again.

GitHub does not redeliver a failed delivery by itself. The sweep lists a hook's deliveries
(newest first) down to the previous sweep's high-water mark, and a GUID qualifies when:

- its **latest** attempt failed: ``status`` is not ``OK``, or ``status_code`` is not 2xx
  (0: GitHub got no answer);
- it is an event we consume (``issues``, ``issue_comment``);
- that attempt is inside GitHub's redelivery window (3 days);
- fewer than 3 redeliveries were requested for it over its lifetime (counted from the
  ``WebhookRedeliveryRequested`` events of its ``delivery-<guid>`` stream);
- our webhook did not refuse it for good: a 400 (malformed or unrecordable payload) or a 413
  (too large) would be refused again, byte for byte.

Each qualifying GUID is redelivered once per sweep, through its latest attempt's id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gip.domain.envelope import parse_iso

CONSUMED_EVENTS = frozenset({"issues", "issue_comment"})
WINDOW = timedelta(days=3)
MAX_ATTEMPTS = 3
LISTING_GRACE = timedelta(seconds=60)  # GitHub lists a requested redelivery well within this
REFUSED_FOR_GOOD = frozenset({400, 413})
REQUESTED = "WebhookRedeliveryRequested"
GUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what a delivery-<guid> stream allows


@dataclass(frozen=True)
class HookDelivery:
    """One attempt as GitHub lists it (``GET …/hook/deliveries``)."""

    id: int
    guid: str
    delivered_at: datetime
    status: str
    status_code: int
    event: str
    action: str | None = None
    redelivery: bool = False

    @classmethod
    def from_api(cls, doc: Mapping[str, object]) -> HookDelivery:
        """Read GitHub's item; ValueError if a field we rely on is missing or mistyped."""
        ident, code, when, guid = doc.get("id"), doc.get("status_code"), doc.get("delivered_at"), doc.get("guid")
        if not isinstance(ident, int) or not isinstance(when, str) or not isinstance(guid, str) \
                or not GUID.fullmatch(guid):
            raise ValueError(f"not a hook delivery: {str(doc)[:120]}")
        action = doc.get("action")
        return cls(id=ident, guid=guid, delivered_at=parse_iso(when),
                   status=str(doc.get("status") or ""),
                   status_code=code if isinstance(code, int) else 0,
                   event=str(doc.get("event") or ""), action=action if isinstance(action, str) else None,
                   redelivery=bool(doc.get("redelivery")))

    @property
    def failed(self) -> bool:
        return self.status != "OK" or not 200 <= self.status_code < 300


@dataclass(frozen=True)
class Page:
    """What one listed page adds: the deliveries above the mark, and whether to stop there."""

    fresh: list[HookDelivery]
    reached_mark: bool


def above_mark(page: Iterable[HookDelivery], *, mark: int | None, since: datetime) -> Page:
    """The deliveries newer than ``mark`` (an id) and not older than ``since``; once one is not,
    the rest of the listing is older still (GitHub lists newest first): stop paging."""
    fresh: list[HookDelivery] = []
    for item in page:
        if (mark is not None and item.id <= mark) or item.delivered_at < since:
            return Page(fresh, True)
        fresh.append(item)
    return Page(fresh, False)


def latest_failures(deliveries: Iterable[HookDelivery], *, now: datetime) -> list[HookDelivery]:
    """The latest attempt of each GUID, where it failed and redelivery could help; oldest first."""
    latest: dict[str, HookDelivery] = {}
    for item in deliveries:
        if item.guid not in latest or item.id > latest[item.guid].id:
            latest[item.guid] = item
    return sorted((d for d in latest.values()
                   if d.failed and d.event in CONSUMED_EVENTS and d.status_code not in REFUSED_FOR_GOOD
                   and now - d.delivered_at <= WINDOW), key=lambda d: d.id)


def attempts_requested(stream_types: Iterable[str]) -> int:
    """How many redeliveries were requested for a GUID, from its stream's event types."""
    return sum(1 for t in stream_types if t == REQUESTED)


def requested_for(history: Iterable[Mapping[str, Any]], delivery_id: int, *, now: datetime,
                  grace: timedelta = LISTING_GRACE) -> bool:
    """Whether a redelivery of this very failed attempt was requested within ``grace`` before
    ``now`` (by another sweep, whose redelivery GitHub may not list yet): it is not asked again.
    An older request for it, with the failure still the latest listed, did not take (its POST
    failed): it is asked again."""
    return any(e.get("type") == REQUESTED and (e.get("data") or {}).get("delivery_id") == delivery_id
               and parse_iso(str(e.get("occurred_at"))) >= now - grace for e in history)


def at_cap(previous_attempts: int, *, cap: int = MAX_ATTEMPTS) -> bool:
    return previous_attempts >= cap


def requested_data(item: HookDelivery, *, hook: str, attempt: int) -> dict[str, object]:
    """``WebhookRedeliveryRequested``'s data (schemas/WebhookRedeliveryRequested.json)."""
    return {"guid": item.guid, "delivery_id": item.id, "hook": hook, "attempt": attempt,
            "status_code": item.status_code, "status": item.status[:200], "event": item.event,
            "action": item.action}


def next_mark(old: int | None, listed: Iterable[HookDelivery], *, unsent: Iterable[HookDelivery] = ()) -> int | None:
    """The new high-water mark: the newest id listed, but below any failure we could not send
    (so the next sweep sees it again); never lower than the old mark."""
    ids = [d.id for d in listed]
    if not ids:
        return old
    mark = max(ids)
    pending = [d.id for d in unsent]
    if pending:
        mark = min(mark, min(pending) - 1)
    return mark if old is None else max(old, mark)
