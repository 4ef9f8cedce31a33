"""Per-hop timestamps for ``bench/e2e.py`` (off unless ``GIP_LOCAL_HOPS`` names a file).

The local pollers call :func:`note` when they hand records to a function: one JSON line per
record (the hop, the event's stream and type, and epoch-second timestamps). The bench reads
the file to show where the time between ``IssueReceived`` and ``IssueQueued`` goes. Nothing is
written in ordinary local mode, and nothing here runs in AWS.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

ENV = "GIP_LOCAL_HOPS"
_lock = threading.Lock()


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def note(hop: str, **fields: Any) -> None:
    """Append one line ``{"hop": hop, **fields}`` to the hops file (no-op when off)."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"hop": hop, **fields}, default=str)
    with _lock, open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def envelope_of(body: str) -> Mapping[str, Any]:
    """Pure: the stored-event envelope an SQS body carries (an EventBridge event's ``detail``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    detail = doc.get("detail") if isinstance(doc, dict) else None
    return detail if isinstance(detail, dict) else {}
