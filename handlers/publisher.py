"""Lambda entry: the publisher (:func:`gip.services.publisher.publish_records`), the events
table's stream onto the bus, in stream order. Settings and client are built once per container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gip.services.publisher import publish_records

_CONTAINER: dict[str, Any] = {}  # settings and the EventBridge client, built once


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point for the events table's stream (ReportBatchItemFailures on)."""
    if not _CONTAINER:
        import boto3

        from gip.config import Settings

        _CONTAINER.update(settings=Settings.from_env(), client=boto3.client("events"))
    settings = _CONTAINER["settings"]
    return publish_records(event.get("Records", []), client=_CONTAINER["client"],
                           bus_name=settings.bus_name, source=settings.prefix)
