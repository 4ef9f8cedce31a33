"""What ``/healthz`` says once the stack is up: ``ready``, or ``degraded`` with the reasons.

Out of bounds (each one reason):

* the publisher's lag, the age of the oldest stored event not yet on the bus, over
  :data:`MAX_LAG_S`;
* records parked after failing (the stream mapping's retries ran out; they are in the
  publisher's DLQ, its on-failure destination);
* a non-empty dead-letter queue;
* fewer live workers than configured (ECS would be replacing one).

``assess`` and ``document`` are pure; :func:`queue_depths` reads the queues.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_LAG_S = 30.0


def assess(*, lag_s: float, parked: int, dlq: Mapping[str, int], live_workers: int,
           configured_workers: int, max_lag_s: float = MAX_LAG_S) -> tuple[str, list[str]]:
    """Pure: ``("ready", [])`` or ``("degraded", reasons)``."""
    reasons = []
    if lag_s > max_lag_s:
        reasons.append(f"publisher lag {lag_s:.0f}s (the oldest event not yet on the bus; bound {max_lag_s:.0f}s)")
    if parked:
        reasons.append(f"{parked} record(s) parked after failing (in the publisher DLQ)")
    for name, depth in sorted(dlq.items()):
        if depth:
            reasons.append(f"dead-letter queue {name} holds {depth} message(s)")
    if live_workers < configured_workers:
        reasons.append(f"{live_workers} of {configured_workers} worker(s) alive")
    return ("degraded" if reasons else "ready"), reasons


def document(*, accounts: Mapping[str, int], queues: Mapping[str, Any], dlq: Mapping[str, int], lag_s: float,
             parked: int, last_error: str, live_workers: int, configured_workers: int) -> dict[str, Any]:
    """Pure: the ``/healthz`` JSON body."""
    status, reasons = assess(lag_s=lag_s, parked=parked, dlq=dlq, live_workers=live_workers,
                             configured_workers=configured_workers)
    return {
        "status": status, "reasons": reasons, "accounts": dict(accounts), "queues": dict(queues),
        "dlq": dict(dlq), "publisher": {"lag_s": round(lag_s, 3), "parked": parked, "last_error": last_error or None},
        "workers": {"live": live_workers, "configured": configured_workers},
    }


def queue_depths(sqs: Any, outputs: Mapping[str, str], queues: Iterable[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Each queue's visible / in-flight depth (``<Name>QueueUrl`` outputs), and every dead-letter
    queue's (each ``…DlqUrl`` output: each queue's, the notifier rule's own, since EventBridge
    cannot use a FIFO DLQ, and the publisher's, the stream mapping's on-failure destination)."""
    depths: dict[str, Any] = {}
    for name in queues:
        attrs = sqs.get_queue_attributes(
            QueueUrl=outputs[f"{name}QueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        depths[name.lower()] = {"visible": int(attrs["ApproximateNumberOfMessages"]),
                                "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"])}
    dlq = {}
    for key in sorted(k for k in outputs if k.endswith("DlqUrl")):
        dlq[key.removesuffix("DlqUrl").lower()] = int(sqs.get_queue_attributes(
            QueueUrl=outputs[key], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
            ["ApproximateNumberOfMessages"])
    depths["dlq_total"] = sum(dlq.values())
    return depths, dlq
