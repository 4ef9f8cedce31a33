"""The report's view model: the log folded with the live reducers into what the page draws.

Pure. Every account and issue stream is evolved event by event with
:func:`gip.domain.pool.evolve` and :func:`gip.domain.issue.evolve` (the reducers ``replay``
and the live path use); a status change opens or closes a Gantt segment, an issue event
opens or updates a run. Events the reducers refuse are counted as anomalies, never raised.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from gip.domain import issue as issue_mod
from gip.domain import pool as pool_mod
from gip.domain.comment import matrix_rows
from gip.domain.envelope import Envelope, iso, parse_iso
from gip.domain.matrix_run import from_event as matrix_result
from gip.domain.matrix_run import sentence
from gip.errors import IllegalTransition

S = TypeVar("S")
DRAWN = (pool_mod.RESERVED, pool_mod.CLEANING, pool_mod.QUARANTINED)
MAX_ATTEMPTS = 3  # the worker's MAX_ATTEMPTS: a failure at this attempt goes to the DLQ


@dataclass
class Segment:
    """One bar: an account in a drawn state from ``start`` to ``end`` (epoch seconds)."""

    account: str
    state: str
    start: float
    end: float
    lease_id: str | None = None
    issue: str | None = None
    reason: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Run:
    """One run of one issue, as its events tell it."""

    stream: str
    run: int
    title: str = ""
    repo: str = ""
    received: float | None = None
    queued: float | None = None
    started: float | None = None
    ended: float | None = None
    status: str = ""
    verdict: str | None = None
    account_id: str | None = None
    lease_id: str | None = None
    first_lease: str | None = None
    result_uri: str | None = None
    error: str | None = None
    retryable: bool | None = None
    attempt: int = 0
    reason: str | None = None
    matrix: tuple[tuple[str, str, float | None], ...] = ()  # issue 17: (version, verdict, seconds)
    summary: str | None = None  # a matrix run's summary (``fixed_in_latest`` …)
    sentence: str = ""  # the status comment's sentence (gip.domain.matrix_run.sentence)

    @property
    def processing(self) -> float | None:
        if self.started is None or self.ended is None or self.status != issue_mod.PROCESSED:
            return None
        return self.ended - self.started


@dataclass
class Model:
    """Everything the page draws, in epoch seconds (UTC)."""

    start: float
    end: float
    as_of: bool
    accounts: list[str] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)  # account -> status at ``end``
    segments: list[Segment] = field(default_factory=list)
    timeouts: list[tuple[str, float, str]] = field(default_factory=list)  # account, at, lease
    runs: list[Run] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    usable: list[tuple[float, int]] = field(default_factory=list)
    cleanups: list[tuple[float, float]] = field(default_factory=list)  # ended at, seconds
    quarantines: list[tuple[str, float, str]] = field(default_factory=list)  # account, at, reason
    streams: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # issue -> (at, type)
    anomalies: list[str] = field(default_factory=list)
    events: int = 0

    def run_for_lease(self) -> dict[str, Run]:
        return {r.lease_id: r for r in self.runs if r.lease_id}


_DAYS: dict[str, float] = {}


def _t(value: str) -> float:
    """Epoch seconds of an ``occurred_at``. The store writes ``iso()``'s fixed shape
    (``2026-01-10T08:00:00.000Z``): its day is looked up once, the clock read by slicing."""
    if len(value) != 24 or value[-1] != "Z":
        return parse_iso(value).timestamp()
    day = _DAYS.get(value[:10])
    if day is None:
        day = _DAYS[value[:10]] = parse_iso(value[:10] + "T00:00:00Z").timestamp()
    return day + int(value[11:13]) * 3600 + int(value[14:16]) * 60 + float(value[17:23])


def build(events: Iterable[Envelope], *, start: datetime | None, end: datetime, as_of: bool = False) -> Model:
    """Fold ``events`` (the log from its start) and keep what falls in ``[start, end]``."""
    streams: dict[str, list[Envelope]] = defaultdict(list)
    count, last = 0, iso(end)
    for event in events:
        if event["occurred_at"] <= last:
            streams[event["stream"]].append(event)
            count += 1
    lo = start.timestamp() if start else min(
        (_t(evs[0]["occurred_at"]) for evs in streams.values() if evs), default=end.timestamp())
    model = Model(start=lo, end=max(end.timestamp(), lo + 1), as_of=as_of, events=count)
    changes: list[tuple[float, int]] = []
    for stream in sorted(streams):
        evs = sorted(streams[stream], key=lambda e: e["version"])
        if stream.startswith("account-"):
            _account(model, stream[8:], evs, changes)
        elif stream.startswith("issue-"):
            _issue(model, stream, evs)
    reserved = {s.lease_id: s.start for s in model.segments if s.state == pool_mod.RESERVED and s.lease_id}
    model.waits = [max(0.0, reserved[r.first_lease] - r.queued) for r in model.runs
                   if r.queued is not None and r.first_lease in reserved and r.queued >= model.start]
    _clip(model)
    _usable(model, changes)
    model.runs.sort(key=lambda r: (r.received or 0, r.stream, r.run), reverse=True)
    model.runs = [r for r in model.runs if (r.ended or r.started or r.received or 0) >= model.start]
    return model


def _account(model: Model, account: str, evs: list[Envelope], changes: list[tuple[float, int]]) -> None:
    model.accounts.append(account)
    open_seg: Segment | None = None
    state: pool_mod.Account | None = None
    for event, state, after, at in _steps(model, evs, pool_mod.evolve):
        before = state.status if state else None
        if before != after.status:
            if open_seg is not None:
                open_seg.end = at
                if open_seg.state == pool_mod.CLEANING and after.status == pool_mod.AVAILABLE:
                    model.cleanups.append((at, open_seg.duration))
                open_seg = None
            if after.status in DRAWN:
                lease = after.lease_id or after.cleaning_lease
                open_seg = Segment(account, after.status, at, at, lease, after.issue, after.reason)
                if after.status == pool_mod.CLEANING and state is not None:
                    open_seg.issue = state.issue
                model.segments.append(open_seg)
            changes.append((at, int(after.usable) - int(state.usable if state else False)))
        if event["type"] == "AccountTimedOut":
            model.timeouts.append((account, at, str(event["data"].get("lease_id", ""))))
        if event["type"] == "AccountQuarantined":
            model.quarantines.append((account, at, str(event["data"].get("reason", ""))))
        state = after
    if open_seg is not None:
        open_seg.end = model.end
    model.final[account] = state.status if state else "(none)"


def _issue(model: Model, stream: str, evs: list[Envelope]) -> None:
    run: Run | None = None
    dots = model.streams.setdefault(stream, [])
    for event, _, after, at in _steps(model, evs, issue_mod.evolve):
        kind, data = event["type"], event["data"]
        dots.append((at, kind))
        if kind == "IssueReceived" or run is None:
            run = Run(stream, after.run, after.title, after.repo, received=at)
            model.runs.append(run)
        run.status = after.status
        if kind == "IssueQueued":
            run.queued = at
        elif kind == "IssueProcessingStarted":
            run.started, run.account_id, run.lease_id = at, after.account_id, after.lease_id
            run.attempt, run.error, run.retryable = after.attempt, None, None
            run.first_lease = run.first_lease or after.lease_id
        elif kind in ("IssueProcessed", "IssueProcessingFailed", "IssueSkipped"):
            run.ended, run.verdict, run.result_uri = at, after.verdict, after.result_uri
            run.error, run.retryable, run.reason = after.error, after.retryable, after.reason
            run.attempt = after.attempt
            run.account_id = run.account_id or data.get("account_id")
            _matrix(run, data if kind == "IssueProcessed" else {})


def _matrix(run: Run, data: Mapping[str, object]) -> None:
    """A matrix run's cells, summary and sentence (issue 17; ``IssueProcessed`` v2), or none."""
    result = matrix_result(data)
    run.matrix = matrix_rows(data) if result else ()
    run.summary = result.summary if result else None
    run.sentence = sentence(result) if result else ""


def _steps(model: Model, evs: list[Envelope], evolve: Callable[[S | None, Envelope], S]
           ) -> Iterator[tuple[Envelope, S | None, S, float]]:
    """(event, state before, state after, epoch seconds) through the live reducer ``evolve``;
    an event it refuses is noted as an anomaly and skipped (the state stays as it was)."""
    state: S | None = None
    for event in evs:
        try:
            after = evolve(state, event)
        except IllegalTransition as exc:
            model.anomalies.append(str(exc))
            continue
        yield event, state, after, _t(event["occurred_at"])
        state = after


def _clip(model: Model) -> None:
    """Keep the segments and marks that touch the window, segments cut to it."""
    kept = []
    for seg in model.segments:
        if seg.end < model.start or seg.start > model.end:
            continue
        seg.start, seg.end = max(seg.start, model.start), min(seg.end, model.end)
        kept.append(seg)
    model.segments = kept
    model.timeouts = [t for t in model.timeouts if model.start <= t[1] <= model.end]
    model.quarantines = [q for q in model.quarantines if model.start <= q[1] <= model.end]
    model.cleanups = [c for c in model.cleanups if model.start <= c[0] <= model.end]


def _usable(model: Model, changes: list[tuple[float, int]]) -> None:
    """Usable accounts as a step function, one point per change inside the window."""
    level = 0
    points: list[tuple[float, int]] = []
    for at, delta in sorted(changes):
        level += delta
        if delta == 0:
            continue
        if at <= model.start:
            points = [(model.start, level)]
        elif at <= model.end:
            points.append((at, level))
    model.usable = points or [(model.start, level)]


def dlq_bound(run: Run) -> bool:
    """A failure retrying cannot fix: not retryable, or its last attempt."""
    return run.status == issue_mod.FAILED and (not run.retryable or run.attempt >= MAX_ATTEMPTS)


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[min(len(ordered), int(rank)) - 1]
