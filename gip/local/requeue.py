"""After a restart, send again the queue messages the old embedded AWS took with it.

In AWS a queued run is a message in the issue queue until a worker finishes it; a run that failed
retryably is that same message coming back after its visibility timeout; an account being cleaned
is a message in the cleanup queue. Local mode keeps only the event log (:mod:`gip.local.state`),
so on start those messages are gone with the old moto. For each one the live path would still
hold, this sends what the bus rule delivered in the first place (templates/management.yaml,
"rules (bus -> SQS only)"): an EventBridge event whose ``detail`` is the stored event.

* ``<prefix>-gatekeeper`` (``ReceivedRule``): the ``IssueReceived`` of each run still RECEIVED;
* ``<prefix>-issues`` (``QueuedRule``): the ``IssueQueued`` of each run QUEUED, RUNNING (it comes
  back as the sweeper leaves it: the lease expires, the run fails retryable, and the message,
  which a worker holds back meanwhile, is then taken) or FAILED and retryable;
* ``<prefix>-cleanup`` (``CleanupRule``): the last ``AccountReleased`` / ``AccountTimedOut`` /
  ``AccountReinstated`` of each account still CLEANING.

Idempotent as the live path is: each consumer re-checks the stream before it acts (the worker's
``message_action`` drops a run that has since ended or used its attempts), and the bus itself is
not used, so nothing is notified or published twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from gip.domain import issue as issue_domain
from gip.domain import pool as pool_domain
from gip.domain.envelope import Envelope

CLEANUP_TYPES = ("AccountReleased", "AccountTimedOut", "AccountReinstated")  # CleanupRule's detail-types


def pending(events: Iterable[Envelope]) -> dict[str, list[Envelope]]:
    """Pure: queue name suffix (``gatekeeper`` / ``issues`` / ``cleanup``) → the stored events whose
    messages the live path would still hold, oldest first."""
    ordered = sorted((e for e in events if "replay" not in e), key=lambda e: (e["stream"], e["version"]))
    by_run: dict[tuple[str, str, int], Envelope] = {}  # (stream, type, run) → the run's event
    last_cleanup: dict[str, Envelope] = {}
    for event in ordered:
        if event["type"] in ("IssueReceived", "IssueQueued"):
            by_run[(event["stream"], event["type"], int(event["data"].get("run", 0)))] = event
        elif event["type"] in CLEANUP_TYPES:
            last_cleanup[event["stream"]] = event
    out: dict[str, list[Envelope]] = {"gatekeeper": [], "issues": [], "cleanup": []}
    for state in issue_domain.fold(ordered).values():
        if state.status == issue_domain.RECEIVED:
            found = by_run.get((state.stream, "IssueReceived", state.run))
            queue = "gatekeeper"
        elif state.status in (issue_domain.QUEUED, issue_domain.RUNNING) or state.awaiting_retry:
            found = by_run.get((state.stream, "IssueQueued", state.run))
            queue = "issues"
        else:
            continue
        if found is not None:
            out[queue].append(found)
    for account_id, account in pool_domain.fold(ordered).items():
        found = last_cleanup.get(f"account-{account_id}")
        if account.status == pool_domain.CLEANING and found is not None:
            out["cleanup"].append(found)
    for messages in out.values():
        messages.sort(key=lambda e: e["occurred_at"])
    return out


def bus_message(event: Envelope, *, source: str, account: str, region: str) -> str:
    """Pure: the SQS body an EventBridge rule delivers for ``event`` (``detail`` is the event)."""
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": event["type"], "source": source,
                       "account": account, "time": event["occurred_at"][:19] + "Z", "region": region,
                       "resources": [], "detail": event})


def send(sqs: Any, saved_events: Iterable[Envelope], *, prefix: str, account: str, region: str) -> Mapping[str, int]:
    """Send each pending message to ``<prefix>-<queue>``; how many per queue."""
    sent = {}
    for queue, events in pending(saved_events).items():
        if not events:
            continue
        url = sqs.get_queue_url(QueueName=f"{prefix}-{queue}")["QueueUrl"]
        for event in events:
            sqs.send_message(QueueUrl=url, MessageBody=bus_message(event, source=prefix, account=account,
                                                                    region=region))
        sent[queue] = len(events)
    return sent
