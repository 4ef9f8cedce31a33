"""Lambda entry: reconcile the pool with the Organization (hourly, or on demand).

The pass itself is :func:`gip.services.reconcile.reconcile_once`, shared with ``bootstrap.py
reconcile`` and local mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gip import observability
from gip.services.reconcile import reconcile_once


@observability.entry("reconcile")
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Scheduled (hourly) or on-demand invocation; returns the summary."""
    return reconcile_once().to_dict()


handler = lambda_handler  # the name the templates use
