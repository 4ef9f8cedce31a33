"""Notifier: one status comment per issue, edited in place, and the verdict labels.
(DESIGN.md, data flow step 5.)

SQS batch in; each record is a bus event (IssueQueued, IssueSkipped, IssueProcessingStarted,
IssueProcessed, IssueProcessingFailed). The comment is rendered from the issue's *latest*
state (``Issues.get``), never from the event alone: a late or redelivered event re-renders the
current state, so an older event cannot overwrite a newer one, and an unchanged body is not
sent at all. The comment also carries the stream version it shows; a comment showing a newer
version is left alone.

- The status comment is found by :data:`~handlers.comment.STATUS_MARKER`, only among comments
  written by our own login (``BOT_LOGIN``, or ``GET /user`` once per container).
- An untrusted sender is told why nothing runs, once per issue (found by its own marker).
- After a verdict, exactly one verdict label is left (``handlers.verdict_labels``).
- A GitHub outage fails the record, SQS brings it back, and the comment catches up: the verdict
  itself is already in the event log and in S3.
- Without a token (local mode) it prints what it would post.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from handlers import verdict_labels
from handlers.comment import (
    STATUS_MARKER,
    UNTRUSTED_MARKER,
    StatusView,
    render_status,
    render_untrusted,
    rendered_version,
)
from handlers.core.config import Settings
from handlers.core.envelope import Envelope, split_issue_stream
from handlers.core.errors import ConfigError, GipError
from handlers.core.issue import FAILED, PROCESSED, QUEUED, RUNNING, SKIPPED, Issue
from handlers.github import errors as gh_errors
from handlers.github.client import GitHubClient
from handlers.github.consumer import run_batch

log = logging.getLogger(__name__)

ISSUE_EVENTS = frozenset({"IssueQueued", "IssueSkipped", "IssueProcessingStarted",
                          "IssueProcessed", "IssueProcessingFailed"})


class ProjectionBehind(GipError):
    """The issue row is older than the event: retry the record later."""


@dataclass(frozen=True)
class Plan:
    """What GitHub should show for an issue's latest state."""

    status: StatusView | None = None  # None: leave the status comment alone
    create: bool = False  # may the status comment be created if it is missing?
    untrusted: tuple[str, str] | None = None  # (sender, permission): the note, once
    label: str | None = None  # the one verdict label to leave on the issue


# ---------------------------------------------------------------- pure


def needs_last_event(issue: Issue) -> bool:
    """Does rendering need the data of the event that produced the state?"""
    return issue.status in (PROCESSED, SKIPPED)


def plan_for(issue: Issue, last: Mapping[str, Any] | None) -> Plan:
    """The plan for ``issue``; ``last`` is the data of its latest event (log tail, links)."""
    last = last or {}
    base = StatusView(state="queued", run=issue.run, version=issue.version)
    if issue.status == QUEUED:
        return Plan(base, create=True)
    if issue.status == RUNNING:
        return Plan(replace(base, state="running", attempt=issue.attempt or None), create=True)
    if issue.status == PROCESSED:
        verdict = issue.verdict or "unknown"
        status = replace(
            base, state="processed", verdict=verdict, exit_code=issue.exit_code,
            duration_s=issue.duration_s, result_uri=issue.result_uri,
            result_url=last.get("result_url"), log_tail=last.get("log_tail"),
            message=last.get("message"), command=last.get("command"),
        )
        return Plan(status, create=True, label=verdict_labels.label_for(verdict))
    if issue.status == FAILED:
        status = replace(base, state="retrying" if issue.retryable else "failed",
                         error=issue.error, attempt=issue.attempt)
        return Plan(status, create=True,
                    label=None if issue.retryable else verdict_labels.INFRA_ERROR)
    if issue.status == SKIPPED:
        if issue.reason == "untrusted_sender":
            sender = str(last.get("sender") or issue.sender)
            return Plan(untrusted=(sender, str(last.get("permission") or "read")))
        return Plan(replace(base, state="skipped", reason=issue.reason), create=False)
    return Plan()  # RECEIVED: the gatekeeper has not decided yet


def find_mine(comments: list[dict[str, Any]], *, login: str, marker: str) -> list[dict[str, Any]]:
    """Comments by ``login`` that start with ``marker``, oldest first."""
    return [c for c in comments
            if (c.get("user") or {}).get("login") == login and (c.get("body") or "").startswith(marker)]


# ---------------------------------------------------------------- shell


class Notifier:
    def __init__(self, *, issues: Any, github: GitHubClient | None, settings: Settings,
                 out: Callable[[str], None] = print) -> None:
        self.issues = issues
        self.github = github
        self.settings = settings
        self.out = out
        self._login: str | None = settings.bot_login or None

    @classmethod
    def from_env(cls) -> Notifier:
        from handlers.core.issue_service import Issues
        from handlers.github.token import TokenSource

        settings = Settings.from_env()
        source = TokenSource(secret_id=settings.github_token_secret_id)
        # the client asks the source on every call: cached, and a rotated secret is picked up
        github = GitHubClient(base_url=settings.github_api_url, token=source.get) if source.get() else None
        return cls(issues=Issues.from_settings(settings), github=github, settings=settings)

    @property
    def login(self) -> str:
        if self._login is None:
            assert self.github is not None
            try:
                self._login = self.github.login()
            except (gh_errors.Forbidden, gh_errors.NotFound) as exc:
                # GitHub App installation tokens cannot read GET /user
                raise ConfigError("cannot find our own GitHub login: set BOT_LOGIN "
                                  "(for an App, '<app-slug>[bot]')") from exc
        return self._login

    def handle(self, envelope: Envelope) -> str:
        """Bring GitHub up to the issue's latest state; returns what was done."""
        if envelope["type"] not in ISSUE_EVENTS:
            return "ignored"
        repo, number = split_issue_stream(envelope["stream"])
        issue = self.issues.get(repo, number)
        if issue is None or issue.version < envelope["version"]:
            raise ProjectionBehind(f"{envelope['stream']} row is behind version {envelope['version']}")
        last: Mapping[str, Any] | None = None
        if needs_last_event(issue):
            last = (envelope["data"] if envelope["version"] == issue.version
                    else self._event_data(issue))
        plan = plan_for(issue, last)
        if self.github is None:
            return self._print(repo, number, plan)
        try:
            return self._apply(repo, number, plan)
        except gh_errors.NotFound:  # deleted or transferred: retrying will not bring it back
            log.warning("%s#%s is gone from GitHub; nothing to update", repo, number)
            return "issue_gone"

    def _apply(self, repo: str, number: int, plan: Plan) -> str:
        assert self.github is not None
        done = []
        if plan.status or plan.untrusted:
            comments = self.github.list_comments(repo, number)
            if plan.status:
                done.append(self._status(repo, number, plan, comments))
            if plan.untrusted:
                done.append(self._untrusted(repo, number, plan.untrusted, comments))
        if plan.label:
            done.append(self._labels(repo, number, plan.label))
        return ",".join(done) or "nothing"

    def _event_data(self, issue: Issue) -> Mapping[str, Any]:
        events = self.issues.store.read(issue.stream, after=issue.version - 1)
        return events[-1]["data"] if events else {}

    def _status(self, repo: str, number: int, plan: Plan, comments: list[dict[str, Any]]) -> str:
        assert self.github is not None and plan.status is not None
        body = render_status(plan.status)
        mine = find_mine(comments, login=self.login, marker=STATUS_MARKER)
        # A create whose answer was lost (5xx, timeout) may have left a second one: keep the oldest.
        for extra in mine[1:]:
            self.github.delete_comment(repo, int(extra["id"]))
        existing = mine[0] if mine else None
        if existing is None:
            if not plan.create:
                return "no_status_comment"
            self.github.create_comment(repo, number, body)
            return "created"
        if existing.get("body") == body:
            return "unchanged"
        shown = rendered_version(existing.get("body"))
        if shown is not None and plan.status.version is not None and shown[0] > plan.status.version:
            return "newer_shown"
        if not plan.create and (shown is None or shown[1] != plan.status.run):
            return "other_run_shown"  # a run skipped before it was queued keeps the last verdict
        self.github.edit_comment(repo, int(existing["id"]), body)
        return "edited"

    def _untrusted(self, repo: str, number: int, who: tuple[str, str],
                   comments: list[dict[str, Any]]) -> str:
        assert self.github is not None
        if find_mine(comments, login=self.login, marker=UNTRUSTED_MARKER):
            return "already_told"
        self.github.create_comment(repo, number, self._untrusted_body(who))
        return "told_untrusted"

    def _untrusted_body(self, who: tuple[str, str]) -> str:
        return render_untrusted(sender=who[0], permission=who[1],
                                trusted=self.settings.trusted_permissions,
                                labels=self.settings.required_labels)

    def _labels(self, repo: str, number: int, wanted: str) -> str:
        assert self.github is not None
        current = [lb["name"] for lb in self.github.get_issue(repo, number).get("labels", [])]
        add, remove = verdict_labels.changes(wanted, current)
        if add:
            self.github.add_labels(repo, number, add)
        for label in remove:
            self.github.remove_label(repo, number, label)
        return f"labels+{len(add)}-{len(remove)}"

    def _print(self, repo: str, number: int, plan: Plan) -> str:
        """Local mode without a token: show what would be posted."""
        if plan.status:
            self.out(f"[notifier] {repo}#{number}: status comment would read:\n"
                     f"{render_status(plan.status)}\n")
        if plan.untrusted:
            self.out(f"[notifier] {repo}#{number}: would tell the sender, once:\n"
                     f"{self._untrusted_body(plan.untrusted)}\n")
        if plan.label:
            self.out(f"[notifier] {repo}#{number}: would set label {plan.label!r} "
                     f"and remove the other verdict labels\n")
        return "printed"


_notifier: Notifier | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch → partial batch failures; one idempotent update per record."""
    global _notifier
    if _notifier is None:
        _notifier = Notifier.from_env()
    return run_batch(event, context, _notifier.handle, github=_notifier.github, name="notifier")
