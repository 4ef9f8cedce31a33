"""An issue's runs, as a pure fold of issue events. No boto3 here.

    (none|PROCESSED|FAILED|SKIPPED) ─Received(run+1)─▶ RECEIVED ─Queued─▶ QUEUED
    RECEIVED|QUEUED|FAILED(retryable) ─Skipped─▶ SKIPPED
    QUEUED|FAILED(retryable) ─ProcessingStarted─▶ RUNNING ─Processed─▶ PROCESSED
    QUEUED|RUNNING ─ProcessingFailed─▶ FAILED

An issue that is RECEIVED, QUEUED or RUNNING is *active*: a new trigger does not start
another run. Events for another run than the current one are refused (a stale message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from gip.domain.envelope import Envelope, split_issue_stream
from gip.errors import IllegalTransition

RECEIVED = "RECEIVED"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
PROCESSED = "PROCESSED"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
ACTIVE = frozenset({RECEIVED, QUEUED, RUNNING})


@dataclass(frozen=True)
class Issue:
    """One issue's folded state: the current run and how it ended."""

    stream: str
    repo: str
    number: int
    status: str
    version: int
    run: int
    title: str = ""
    html_url: str = ""
    labels: tuple[str, ...] = ()
    sender: str = ""
    trigger: str = ""
    author_association: str = ""
    correlation_id: str = ""
    received_at: str = ""
    updated_at: str = ""
    permission: str | None = None
    account_id: str | None = None
    lease_id: str | None = None
    worker: str | None = None
    attempt: int = 0
    verdict: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    result_uri: str | None = None
    error: str | None = None
    retryable: bool | None = None
    reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def awaiting_retry(self) -> bool:
        return self.status == FAILED and bool(self.retryable)

    def as_dict(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out["labels"] = list(self.labels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Issue:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "extra"}
        labels = known.get("labels", ())
        known["labels"] = tuple(labels) if isinstance(labels, Iterable) else labels
        # A row as_dict wrote (trusted, not re-validated): field types are as stored.
        return cls(**known)  # type: ignore[arg-type]


def _refuse(state: Issue | None, event: Envelope, reason: str = "") -> IllegalTransition:
    return IllegalTransition(event["stream"], state.status if state else "(none)", event["type"], reason)


def _same_run(state: Issue, event: Envelope) -> None:
    run = event["data"].get("run")
    if run is not None and run != state.run:
        raise _refuse(state, event, f"run {run} is not the current run {state.run}")


def evolve(state: Issue | None, event: Envelope) -> Issue:
    """Apply one issue event. Pure: returns a new state or raises IllegalTransition."""
    kind, data, at = event["type"], event["data"], event["occurred_at"]
    if kind == "IssueReceived":
        if state is not None and state.active:
            raise _refuse(state, event, f"run {state.run} is still active")
        expected_run = (state.run if state else 0) + 1
        if data["run"] != expected_run:
            raise _refuse(state, event, f"run must be {expected_run}")
        repo, number = split_issue_stream(event["stream"])
        return Issue(
            stream=event["stream"], repo=repo, number=number, status=RECEIVED,
            version=event["version"], run=data["run"], title=data["title"],
            html_url=data["html_url"], labels=tuple(data["labels"]), sender=data["sender"],
            trigger=data["trigger"], author_association=data.get("author_association", ""),
            correlation_id=event["correlation_id"], received_at=at, updated_at=at,
        )
    if state is None:
        raise _refuse(state, event, "no run was received")
    _same_run(state, event)
    base = replace(state, version=event["version"], updated_at=at)
    if kind == "IssueQueued":
        if state.status != RECEIVED:
            raise _refuse(state, event)
        return replace(base, status=QUEUED, permission=data["permission"])
    if kind == "IssueSkipped":
        if state.status not in (RECEIVED, QUEUED) and not state.awaiting_retry:
            raise _refuse(state, event)
        return replace(base, status=SKIPPED, reason=data["reason"])
    if kind == "IssueProcessingStarted":
        if state.status != QUEUED and not state.awaiting_retry:
            raise _refuse(state, event)
        return replace(base, status=RUNNING, account_id=data["account_id"],
                       lease_id=data["lease_id"], worker=data["worker"],
                       attempt=data.get("attempt", state.attempt + 1), error=None, retryable=None)
    if kind == "IssueProcessed":
        if state.status != RUNNING:
            raise _refuse(state, event)
        return replace(base, status=PROCESSED, verdict=data["verdict"], exit_code=data["exit_code"],
                       duration_s=data["duration_s"], result_uri=data["result_uri"])
    if kind == "IssueProcessingFailed":
        if state.status not in (QUEUED, RUNNING):
            raise _refuse(state, event)
        return replace(base, status=FAILED, error=data["error"], retryable=data["retryable"],
                       attempt=max(state.attempt, data["attempt"]))
    raise _refuse(state, event, "not an issue event")


def fold(events: Iterable[Envelope], issues: dict[str, Issue] | None = None) -> dict[str, Issue]:
    """Fold issue events (each stream in version order) into states by stream id."""
    out = dict(issues or {})
    for event in events:
        if event["stream"].startswith("issue-"):
            out[event["stream"]] = evolve(out.get(event["stream"]), event)
    return out
