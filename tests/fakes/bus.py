"""SQS records as the bus delivers them (EventBridge rule → SQS → Lambda event source)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any


def bus_event(envelope: Mapping[str, Any], *, source: str = "github-issue-processor") -> dict[str, Any]:
    """The EventBridge event for an envelope: detail-type = type, detail = envelope."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": envelope["type"],
        "source": source, "account": "123456789012", "time": envelope["occurred_at"][:19] + "Z",
        "region": "us-east-1", "resources": [], "detail": dict(envelope),
    }


def sqs_record(envelope: Mapping[str, Any], *, message_id: str | None = None) -> dict[str, Any]:
    """One SQS record whose body is the bus event of ``envelope``."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB-fake",
        "body": json.dumps(bus_event(envelope)),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:github-issue-processor-queue",
        "awsRegion": "us-east-1",
    }


def sqs_batch(envelopes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An SQS event source batch, message ids ``m0``, ``m1``…"""
    return {"Records": [sqs_record(e, message_id=f"m{i}") for i, e in enumerate(envelopes)]}
