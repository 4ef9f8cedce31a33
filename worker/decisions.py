"""One INFO line per issue message: what the loop decided and why.

Every outcome of :meth:`worker.loop.Worker.handle_issue` is logged once, by :meth:`Decisions.decided`,
with the ``decision`` key (``reserved``, ``contended``, ``empty``, ``pool_timeout``,
``dropped``, ``busy``), ``message_age_s`` (since this copy was sent), ``waits``, ``decide_s``
and, when the message was put back, ``requeue_s``. The text says why
from what the loop already holds (the pool's :class:`~gip.services.pool.ReserveTrace`, the
message's own attributes): nothing is read from AWS just to log it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.queue_io import message_waits

log = logging.getLogger(__name__)


def message_facts(msg: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Pure: how long ago this copy of the message was sent (s) and how many pool waits it
    has counted, from the attributes the worker receives anyway."""
    sent = msg.get("Attributes", {}).get("SentTimestamp")
    facts: dict[str, Any] = {"waits": message_waits(msg)}
    if sent:
        facts["message_age_s"] = round(max(0.0, now.timestamp() - int(sent) / 1000), 2)
    return facts


def describe(outcome: str, why: str, facts: Mapping[str, Any], requeue_s: int | None = None) -> str:
    """Pure: the line's text, e.g. ``contended, requeued in 2 s: <why> (sent 0.4 s ago, 0 pool wait(s) so far)``."""
    head = outcome if requeue_s is None else f"{outcome}, requeued in {requeue_s} s"
    age = f"sent {facts['message_age_s']} s ago, " if "message_age_s" in facts else ""
    return f"issue message {head}: {why} ({age}{facts.get('waits', 0)} pool wait(s) so far)"


class Decisions:
    """The facts of the message in hand, taken when it is received; :meth:`decided` logs the
    decision with them and with how long it took to reach (``decide_s``: the stream check,
    the reserve)."""

    def __init__(self, msg: Mapping[str, Any], now: datetime) -> None:
        self.facts, self._start = message_facts(msg, now), time.monotonic()

    def decided(self, outcome: str, why: str, *, requeue_s: int | None = None, returns: str | None = None) -> str:
        """Log the decision (INFO) and return what ``poll_once`` reports (``returns``, else ``outcome``)."""
        keys = {"decision": outcome, **self.facts, "decide_s": round(time.monotonic() - self._start, 3)}
        if requeue_s is not None:
            keys["requeue_s"] = requeue_s
        log.info("%s", describe(outcome, why, self.facts, requeue_s), extra=keys)
        return returns or outcome
