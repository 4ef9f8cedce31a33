"""Pure time parsing for the operator CLI: ISO-8601 instants or relative ages.

``parse_instant("2h", now=...)`` is two hours before ``now``; ``parse_instant("2026-11-27")``
is midnight UTC that day; ``parse_instant("2026-11-27T10:00:00+02:00")`` is 08:00 UTC.
Every result is an aware UTC ``datetime``. No clock is read here: callers pass ``now``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from gip.errors import UsageError

_UNITS = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*(?:ago)?\s*$", re.IGNORECASE)


def parse_relative(text: str) -> timedelta | None:
    """``"2h"`` → 2 hours, ``"30m"``, ``"7d"``, ``"1w"``, ``"90s"``; None if not relative."""
    match = _RELATIVE.match(text)
    if not match:
        return None
    amount, unit = float(match.group(1)), match.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 date or datetime; naive values are taken as UTC. Raises UsageError."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(
            f"cannot read time '{text}': use ISO-8601 (2026-11-27T10:00:00Z) or an age like 2h, 30m, 7d"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_instant(text: str, *, now: datetime) -> datetime:
    """An ISO-8601 instant, or an age relative to ``now`` (``2h`` = two hours ago)."""
    if not text or not text.strip():
        raise UsageError("empty time value")
    delta = parse_relative(text)
    if delta is not None:
        return _utc(now) - delta
    return parse_iso(text)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
