"""Lambda entry: the publisher (:func:`gip.services.publisher.publish_records`), the events
table's stream onto the bus, in stream order, and the metrics the published events stand for.
Settings and client are built once per container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gip import observability
from gip.container import once
from gip.services.publisher import publish_records

if TYPE_CHECKING:
    from gip.config import Settings


@once  # once per container
def _service() -> tuple[Settings, Any]:
    """The settings and the EventBridge client."""
    import boto3

    from gip.config import Settings

    return Settings.from_env(), boto3.client("events")


@observability.entry("publisher")
def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point for the events table's stream (ReportBatchItemFailures on)."""
    settings, client = _service()
    return publish_records(event.get("Records", []), client=client, bus_name=settings.bus_name,
                           source=settings.prefix, metrics=observability.emitter(settings.prefix))
