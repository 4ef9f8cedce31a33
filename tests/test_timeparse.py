"""gip.cli.timeparse: ISO-8601 and relative ages, pure (no clock read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gip.cli.timeparse import parse_instant, parse_iso, parse_relative
from gip.errors import UsageError

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("2h", timedelta(hours=2)),
        ("30m", timedelta(minutes=30)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("2H", timedelta(hours=2)),
        (" 3d ago ", timedelta(days=3)),
    ],
)
def test_relative_age_counts_back_from_now(text: str, delta: timedelta) -> None:
    assert parse_relative(text) == delta
    assert parse_instant(text, now=NOW) == NOW - delta


def test_iso_with_z_offset_and_date_only_are_utc() -> None:
    assert parse_iso("2026-11-27T10:00:00Z") == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert parse_iso("2026-11-27T10:00:00+02:00") == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert parse_iso("2026-11-27") == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_iso("2026-11-27T10:00:00.250000Z").microsecond == 250000


def test_naive_iso_is_taken_as_utc_and_result_is_aware() -> None:
    parsed = parse_instant("2026-11-27T10:00:00", now=NOW)
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2x", "", "   ", "2026-13-01", "h2"])
def test_unreadable_time_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_instant(text, now=NOW)


def test_relative_parse_does_not_accept_iso() -> None:
    assert parse_relative("2026-11-27") is None
