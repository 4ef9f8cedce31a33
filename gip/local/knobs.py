"""Knobs of the local runtime's waits, read from the environment (for tests and impatient users).

Unset, local mode plays the template and the compressed clock exactly (docs/local.md); the
end-to-end tests set them so that, e.g., a broken subscription is parked after a few retries
rather than after the template's hundred.

| variable | default | what it changes |
|---|---|---|
| ``GIP_LOCAL_STREAM_RETRIES`` | the stream mapping's ``MaximumRetryAttempts`` (100) | retries of a failing stream record before it is parked |
| ``GIP_LOCAL_STREAM_RETRY_S`` | 0.2 | seconds between two attempts at a failing stream record |
| ``GIP_LOCAL_RECONCILE_S`` | 4 (the compressed clock) | seconds between two reconcile passes (two passes register an account) |
| ``GIP_LOCAL_REDELIVER_S`` | 30 | seconds between two sweeps for failed webhook deliveries |

A value that is not a number in range is refused with one line naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gip.errors import ConfigError

STREAM_RETRIES = "GIP_LOCAL_STREAM_RETRIES"
STREAM_RETRY_S = "GIP_LOCAL_STREAM_RETRY_S"
RECONCILE_S = "GIP_LOCAL_RECONCILE_S"
REDELIVER_S = "GIP_LOCAL_REDELIVER_S"
STREAM_RETRY_S_DEFAULT = 0.2


@dataclass(frozen=True)
class Knobs:
    stream_retries: int | None = None  # None: the mapping's MaximumRetryAttempts
    stream_retry_s: float = STREAM_RETRY_S_DEFAULT
    reconcile_s: float | None = None  # None: the compressed clock's period
    redeliver_s: float | None = None  # None: the compressed clock's period (its 30 s floor)

    def max_retries(self, mapping_retries: int) -> int:
        """The stream poller's retries: this knob's, else the mapping's."""
        return mapping_retries if self.stream_retries is None else self.stream_retries

    def periods(self) -> dict[str, float]:
        """Schedule periods replacing the compressed clock's (rule name suffix -> seconds)."""
        periods = {"-reconcile-schedule": self.reconcile_s, "-redeliver-schedule": self.redeliver_s}
        return {suffix: seconds for suffix, seconds in periods.items() if seconds is not None}


def _number(environ: Mapping[str, str], name: str, *, integer: bool, low: float, high: float) -> float | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"{name} must be {kind} from {low:g} to {high:g}, not {raw!r}")
    return value


def from_env(environ: Mapping[str, str]) -> Knobs:
    """Pure: the knobs set in ``environ`` (ConfigError naming the variable on a bad value)."""
    retries = _number(environ, STREAM_RETRIES, integer=True, low=0, high=10_000)
    retry_s = _number(environ, STREAM_RETRY_S, integer=False, low=0.01, high=60)
    return Knobs(stream_retries=None if retries is None else int(retries),
                 stream_retry_s=STREAM_RETRY_S_DEFAULT if retry_s is None else retry_s,
                 reconcile_s=_number(environ, RECONCILE_S, integer=False, low=0.5, high=3600),
                 redeliver_s=_number(environ, REDELIVER_S, integer=False, low=0.5, high=3600))
