"""PURE: which CloudWatch metrics an event (or a known pair of times) stands for.

The names, units and dimensions are the contract with the alarms and the dashboard in
``templates/management.yaml`` (tests/test_templates.py reads them from here). Every point also
gets the ``Prefix`` dimension (the deployment) where it is emitted; no dimension ever holds an
issue number, an account id or a lease id (cardinality stays a handful of series).
See docs/internals.md, "Logs and metrics".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gip.domain.envelope import parse_iso

NAMESPACE = "GitHubIssueProcessor"
PREFIX = "Prefix"  # the one dimension every point carries (added by the emitter)
COUNT, SECONDS = "Count", "Seconds"


@dataclass(frozen=True)
class Metric:
    """A metric's name, unit and extra dimension names (beyond ``Prefix``)."""

    name: str
    unit: str
    dimensions: tuple[str, ...] = ()


ISSUES_RECEIVED = Metric("IssuesReceived", COUNT)
ISSUES_QUEUED = Metric("IssuesQueued", COUNT)
ISSUES_SKIPPED = Metric("IssuesSkipped", COUNT)
ISSUES_PROCESSED = Metric("IssuesProcessed", COUNT, ("Verdict",))
ISSUE_FAILURES = Metric("IssueFailures", COUNT, ("Retryable",))
PROCESSING_SECONDS = Metric("ProcessingSeconds", SECONDS)
QUEUE_WAIT_SECONDS = Metric("QueueWaitSeconds", SECONDS)
LEASE_SECONDS = Metric("LeaseSeconds", SECONDS, ("End",))
USABLE_ACCOUNTS = Metric("UsableAccounts", COUNT)
AVAILABLE_ACCOUNTS = Metric("AvailableAccounts", COUNT)
CLEANUP_FAILURES = Metric("CleanupFailures", COUNT)
QUARANTINES = Metric("Quarantines", COUNT)

ALL: tuple[Metric, ...] = (
    ISSUES_RECEIVED, ISSUES_QUEUED, ISSUES_SKIPPED, ISSUES_PROCESSED, ISSUE_FAILURES,
    PROCESSING_SECONDS, QUEUE_WAIT_SECONDS, LEASE_SECONDS, USABLE_ACCOUNTS, AVAILABLE_ACCOUNTS,
    CLEANUP_FAILURES, QUARANTINES,
)
# Bounded dimension values: anything else is reported as "other", never passed through.
VERDICTS = frozenset({"reproduced", "not_reproduced", "broken_repro", "no_repro_found"})


@dataclass(frozen=True)
class Point:
    """One value of one metric, with its extra dimensions as sorted (name, value) pairs."""

    metric: Metric
    value: float
    dimensions: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.metric.name


def point(metric: Metric, value: float, **dimensions: str) -> Point:
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(f"{metric.name} takes the dimensions {metric.dimensions}, not {tuple(dimensions)}")
    return Point(metric, float(value), tuple(sorted(dimensions.items())))


def _seconds(start: str, end: str) -> float | None:
    try:
        return max(0.0, (parse_iso(end) - parse_iso(start)).total_seconds())
    except (TypeError, ValueError):
        return None


def from_event(event: Mapping[str, object]) -> list[Point]:
    """The points one stored event stands for (none for most account events).

    ``LeaseSeconds`` here only for a lease the sweeper ended (``AccountTimedOut`` carries
    ``reserved_at``); a released lease is measured by the worker (:func:`lease_seconds`).
    """
    kind, data = event.get("type"), event.get("data")
    if not isinstance(data, Mapping):
        return []
    if kind == "IssueReceived":
        return [point(ISSUES_RECEIVED, 1)]
    if kind == "IssueQueued":
        return [point(ISSUES_QUEUED, 1)]
    if kind == "IssueSkipped":
        return [point(ISSUES_SKIPPED, 1)]
    if kind == "IssueProcessed":
        verdict = data.get("verdict")
        out = [point(ISSUES_PROCESSED, 1, Verdict=verdict if verdict in VERDICTS else "other")]
        duration = data.get("duration_s")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0:
            out.append(point(PROCESSING_SECONDS, duration))
        return out
    if kind == "IssueProcessingFailed":
        return [point(ISSUE_FAILURES, 1, Retryable="true" if data.get("retryable") is True else "false")]
    if kind == "AccountCleanupFailed":
        return [point(CLEANUP_FAILURES, 1)]
    if kind == "AccountQuarantined":
        return [point(QUARANTINES, 1)]
    if kind == "AccountTimedOut":
        held = _seconds(str(data.get("reserved_at", "")), str(event.get("occurred_at", "")))
        return [] if held is None else [point(LEASE_SECONDS, held, End="timed_out")]
    return []


def queue_wait(*, waiting_since: str, started_at: str) -> list[Point]:
    """``QueueWaitSeconds``: from the event that left the run waiting (``IssueQueued``, or a
    retryable ``IssueProcessingFailed``) to its ``IssueProcessingStarted``."""
    waited = _seconds(waiting_since, started_at)
    return [] if waited is None else [point(QUEUE_WAIT_SECONDS, waited)]


def lease_seconds(*, reserved_at: str, released_at: str) -> list[Point]:
    """``LeaseSeconds`` of a lease its worker released."""
    held = _seconds(reserved_at, released_at)
    return [] if held is None else [point(LEASE_SECONDS, held, End="released")]


def accounts(*, usable: int, available: int | None) -> list[Point]:
    """The pool gauges the capacity function publishes on every sync (``available`` if known)."""
    return [point(USABLE_ACCOUNTS, usable)] + ([] if available is None else [point(AVAILABLE_ACCOUNTS, available)])
