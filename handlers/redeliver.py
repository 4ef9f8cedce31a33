"""Lambda entry: the redelivery sweep (:mod:`gip.services.redelivery`), every 15 minutes.
Its hooks, marks and store are built once per container."""

from __future__ import annotations

from typing import Any

from gip import observability
from gip.container import once
from gip.services.redelivery import Redelivery


@once  # once per container
def _service() -> Redelivery:
    from gip.config import Settings
    from gip.services.redelivery import from_settings

    return from_settings(Settings.from_env())


@observability.entry("redeliver")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Schedule entry point: the event's content does not matter, every call sweeps."""
    reports = _service().sweep()
    return {"hooks": [r.as_dict() for r in reports]}
