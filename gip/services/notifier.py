"""Notifier: one status comment per issue, edited in place, and the verdict labels.
(DESIGN.md, data flow step 5.)

SQS batch in; each record is a bus event (IssueQueued, IssueSkipped, IssueProcessingStarted,
IssueProcessed, IssueProcessingFailed). The comment is rendered from the issue's *latest*
state (``Issues.get``), never from the event alone: a late or redelivered event re-renders the
current state, so an older event cannot overwrite a newer one, and an unchanged body is not
sent at all. The comment also carries the stream version it shows; a comment showing a newer
version is left alone.

- The status comment is found by :data:`~gip.domain.comment.STATUS_MARKER`, only among our own
  comments (:func:`gip.domain.comment.is_ours`: our user id from ``GET /user`` once per
  container, the App's id, else ``BOT_LOGIN`` without case).
- An untrusted sender is told why nothing runs only with EXPLAIN_UNTRUSTED (once per issue).
- After a verdict, exactly one verdict label is left (``gip.domain.verdict_labels``, compared
  without case); the four are created up front in each repository, once per container.
- A GitHub outage fails the record, SQS brings it back, and the comment catches up: the verdict
  itself is already in the event log and in S3.
- Without a token (local mode) it prints what it would post, each change once.

GitHub calls are kept down by our own records and what this container knows (:class:`Memory`):
- the notifier's first write for a run is the 👀 (the gatekeeper makes none: docs/internals.md,
  "Time to verdict"); 😕 answers an untrusted command. The 👀 is what shows a queued run: the
  status comment is created once the run starts (or ends), and an earlier run's comment is
  brought up to date when the new run is queued. So a run costs 👀, a create, a label (3 writes)
  when the notifier sees its end in one go, plus one edit per state it sees apart.
- our status comment's id comes from the record (:mod:`~gip.services.status_record`), its
  body from memory or a read by id: an identical body sends nothing, another is one edit; a 404
  (deleted by hand) creates it again. Comments are listed only as that module says. The
  notifier runs one batch at a time (FIFO, one message group) and reads the row consistently.
- the verdict label set during this run; the labels come from the issue's labels at trigger
  time (``Issue.labels``), not from ``GET issue`` (see ``verdict_labels.changes_since_trigger``).
- in a batch, records of a stream whose version was already rendered in that batch are done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gip.adapters.github import errors as gh_errors
from gip.adapters.github.client import GitHubClient, repo_path
from gip.config import Settings
from gip.domain import verdict_labels
from gip.domain.comment import (
    STATUS_MARKER,
    UNTRUSTED_MARKER,
    StatusView,
    matrix_rows,
    render_status,
    render_untrusted,
)
from gip.domain.envelope import Cause, Envelope, split_issue_stream
from gip.domain.issue import FAILED, PROCESSED, QUEUED, RUNNING, SKIPPED, Issue
from gip.errors import ConfigError, GipError
from gip.services.notifier_memory import Memory, Shown
from gip.services.status_record import NONE, Record, StatusRecords, react, reaction
from gip.services.status_step import find_mine, status_step

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.services.issues import Issues

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
    matrix_label: str | None = None  # issue 17: fixed-in-latest / still-reproduces beside it


# ---------------------------------------------------------------- pure


def needs_last_event(issue: Issue) -> bool:
    """Does rendering need the data of the event that produced the state?"""
    return issue.status in (PROCESSED, SKIPPED)


def plan_for(issue: Issue, last: Mapping[str, Any] | None, *, explain_untrusted: bool = False,
             matrix_names: dict[str, str] | None = None) -> Plan:
    """The plan for ``issue``; ``last`` is the data of its latest event (log tail, links).

    An untrusted sender gets no comment (the gatekeeper's 😕 answers a command) unless
    ``explain_untrusted`` (EXPLAIN_UNTRUSTED) opts in to the explanatory note."""
    last = last or {}
    base = StatusView(state="queued", run=issue.run, version=issue.version)
    if issue.status == QUEUED:  # the 👀 says queued; an earlier run's comment is brought up to date
        return Plan(base, create=False)
    if issue.status == RUNNING:
        return Plan(replace(base, state="running", attempt=issue.attempt or None), create=True)
    if issue.status == PROCESSED:
        verdict = issue.verdict or "unknown"
        status = replace(
            base, state="processed", verdict=verdict, exit_code=issue.exit_code,
            duration_s=issue.duration_s, result_uri=issue.result_uri,
            result_url=last.get("result_url"), log_tail=last.get("log_tail"),
            message=last.get("message"), command=last.get("command"), matrix=matrix_rows(last),
        )
        return Plan(status, create=True, label=verdict_labels.label_for(verdict),
                    matrix_label=verdict_labels.matrix_label_for(last.get("summary"), matrix_names))
    if issue.status == FAILED:
        status = replace(base, state="retrying" if issue.retryable else "failed",
                         error=issue.error, attempt=issue.attempt)
        return Plan(status, create=True,
                    label=None if issue.retryable else verdict_labels.INFRA_ERROR)
    if issue.status == SKIPPED:
        if issue.reason == "untrusted_sender":
            if not explain_untrusted:
                return Plan()
            sender = str(last.get("sender") or issue.sender)
            return Plan(untrusted=(sender, str(last.get("permission") or "read")))
        bad = issue.reason == "bad_config"  # issue 17: a new comment names the line of reproduce.yml
        return Plan(replace(base, state="skipped", reason=issue.reason,
                            error=str(last.get("detail") or "") if bad else None), create=bad)
    return Plan()  # RECEIVED: the gatekeeper has not decided yet


# ---------------------------------------------------------------- shell

class Notifier:
    def __init__(self, *, issues: Issues, github: GitHubClient | None, settings: Settings,
                 out: Callable[[str], None] = print) -> None:
        self.issues = issues
        self.github = github
        self.settings = settings
        self.out = out
        self._login: str | None = settings.bot_login or None
        self._user_id: int | None = None
        # the App's id: local mode's setting, else the deployed App's credentials (its secret)
        app = str(settings.github_app_id or getattr(getattr(github, "credentials", None), "app_id", "") or "")
        self._app_id: int | None = int(app) if app.isdigit() else None
        self._identity_asked = False
        self.memory = Memory()
        self.records = StatusRecords(issues.store)
        self._batch: dict[str, int] | None = None  # stream → version rendered in this batch

    @classmethod
    def from_env(cls) -> Notifier:
        from gip.adapters.github.consumer import client_for
        from gip.services.issues import Issues

        settings = Settings.from_env()
        return cls(issues=Issues.from_settings(settings), github=client_for(settings),
                   settings=settings)

    def _find_mine(self, comments: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
        """Ours by user id (``GET /user`` once, or a comment we wrote), App id, else login."""
        if self._user_id is None and not self._identity_asked and self.github is not None:
            self._identity_asked = True
            # an App installation token cannot read /user: the app id or the login serve then
            with contextlib.suppress(gh_errors.Forbidden, gh_errors.NotFound):
                self._learn_identity({"user": self.github.me()})
        if self._user_id is None and self._app_id is None and not self._login:
            raise ConfigError("cannot find our own GitHub identity: set BOT_LOGIN "
                              "(for an App, '<app-slug>[bot]')")
        return find_mine(comments, login=self._login or "", marker=marker,
                         user_id=self._user_id, app_id=self._app_id)

    def _learn_identity(self, doc: Mapping[str, Any]) -> None:
        found = doc.get("user")
        user: Mapping[str, Any] = found if isinstance(found, dict) else {}
        if isinstance(user.get("id"), int):
            self._user_id = int(user["id"])
        if self._login is None and isinstance(user.get("login"), str):
            self._login = str(user["login"])

    def _ensure_repo_labels(self, repo: str) -> None:
        """Create the verdict labels ``repo`` lacks (colours, descriptions), once per container."""
        assert self.github is not None
        if self.memory.repo_labels.get(repo):
            return
        try:
            existing = [str(label.get("name", "")) for label in self.github.list_labels(repo)]
            specs = verdict_labels.specs(self.settings.matrix_labels)
            for name in verdict_labels.missing(existing, self.settings.matrix_labels):
                color, description = specs[name]
                self.github.create_label(repo, name, color=color, description=description)
        except (gh_errors.Forbidden, gh_errors.Invalid) as exc:  # then GitHub makes grey ones
            log.warning("%s: verdict labels not created up front: %s", repo, exc)
        self.memory.repo_labels.put(repo, True)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One SQS batch: a stream's latest state is rendered once, by its first record.

        A record is done once a version at least as new as its own was rendered in this batch,
        since rendering always shows the latest state. Only a fully applied render counts, so a
        record whose render failed leaves the next record of that stream to try again, and each
        failed record still comes back on its own.
        """
        self._batch = {}
        try:
            yield
        finally:
            self._batch = None

    def handle(self, envelope: Envelope) -> str:
        """Bring GitHub up to the issue's latest state; returns what was done."""
        if envelope["type"] not in ISSUE_EVENTS:
            return "ignored"
        stream = envelope["stream"]
        if self._batch is not None and self._batch.get(stream, 0) >= envelope["version"]:
            return "rendered_in_batch"
        repo, number = split_issue_stream(stream)
        issue = self.issues.get(repo, number)
        if issue is None or issue.version < envelope["version"]:
            raise ProjectionBehind(f"{stream} row is behind version {envelope['version']}")
        last: Mapping[str, Any] | None = None
        if needs_last_event(issue):
            last = (envelope["data"] if envelope["version"] == issue.version
                    else self._event_data(issue))
        plan = plan_for(issue, last, explain_untrusted=self.settings.explain_untrusted,
                        matrix_names=self.settings.matrix_labels)
        if self.github is None:
            done = self._print(issue, plan)
        else:
            try:
                done = self._apply(issue, plan)
            except (gh_errors.NotFound, gh_errors.Moved) as exc:  # deleted or transferred
                log.warning("%s#%s is gone from GitHub (%s); nothing to update", repo, number, exc)
                self.memory.shown.drop(stream)
                done = "issue_gone"
        if self._batch is not None:
            self._batch[stream] = max(self._batch.get(stream, 0), issue.version)
        return done

    def _apply(self, issue: Issue, plan: Plan) -> str:
        assert self.github is not None
        github, repo, number = self.github, issue.repo, issue.number
        listed: list[list[dict[str, Any]]] = []

        def comments() -> list[dict[str, Any]]:  # listed at most once per record
            if not listed:
                listed.append(github.list_comments(repo, number))
            return listed[0]

        record = self.memory.records.get(issue.stream)
        if record is None or record.comment_id is None:  # "no comment yet" is re-read: another
            record = self.records.get(issue.stream) or NONE  # container may have created it
        owed = reaction(issue, issue.status in (QUEUED, RUNNING, PROCESSED, FAILED), record.run,
                         lambda: self.issues.store.read(issue.stream))
        if owed is not None and (owed[0] == "eyes" or self.memory.confused.get(issue.stream) != issue.run):
            react(self.github, issue, *owed)
            self.memory.confused.put(issue.stream, issue.run)
        done = []
        if plan.status:
            done.append(self._status(issue, plan, comments, record))
        self._keep_record(issue, record, reacted=owed is not None and owed[0] == "eyes",
                          created=bool(done) and done[0] == "created")
        if plan.untrusted:
            done.append(self._untrusted(issue, plan.untrusted, comments))
        if plan.label:
            done.append(self._labels(issue, plan.label))
        if plan.matrix_label:  # issue 17; the trigger-time labels stand in for GitHub's
            add, remove = verdict_labels.matrix_changes(plan.matrix_label, issue.labels,
                                                       self.settings.matrix_labels)
            for label in add:
                github.add_labels(repo, number, [label])
            for label in remove:
                github.remove_label(repo, number, label)
        return ",".join(done) or "nothing"

    def _event_data(self, issue: Issue) -> Mapping[str, Any]:
        events = self.issues.store.read(issue.stream, after=issue.version - 1)
        return events[-1]["data"] if events else {}

    def _status(self, issue: Issue, plan: Plan,
                comments: Callable[[], list[dict[str, Any]]], record: Record) -> str:
        assert self.github is not None and plan.status is not None
        repo, stream, shown = issue.repo, issue.stream, self.memory.shown
        body = render_status(plan.status)
        hit = shown.get(stream)
        if hit is None and record.comment_id is not None:  # a cold container: read it by id
            try:
                doc = self.github.request("GET", f"{repo_path(repo)}/issues/comments/{record.comment_id}", repo=repo)
            except gh_errors.NotFound:  # deleted by hand: create it again
                return self._create(issue, body, plan)
            hit = Shown(record.comment_id, str(doc.get("body") or ""))
            shown.put(stream, hit)
        if hit is not None:
            step = status_step(hit.body, body, plan)
            if step != "edit":
                return step
            try:
                self.github.edit_comment(repo, hit.comment_id, body)
            except gh_errors.NotFound:  # deleted by hand: create it again
                shown.drop(stream)
                return self._create(issue, body, plan)
            shown.put(stream, Shown(hit.comment_id, body))
            return "edited"
        if (not record.exists and issue.run == 1) or (record.exists and not record.check):
            # our record says there is no comment (every create is recorded): nothing to find
            return self._create(issue, body, plan)
        mine = self._find_mine(comments(), STATUS_MARKER)
        # A create whose answer was lost (5xx, timeout) may have left a second one: keep the oldest.
        for extra in mine[1:]:
            self.github.delete_comment(repo, int(extra["id"]))
        existing = mine[0] if mine else None
        step = status_step(existing.get("body") if existing else None, body, plan)
        if step == "create":
            return self._create(issue, body, plan)
        if existing is None:
            return step
        if step == "edit":
            self.github.edit_comment(repo, int(existing["id"]), body)
            shown.put(stream, Shown(int(existing["id"]), body))
            return "edited"
        shown.put(stream, Shown(int(existing["id"]), str(existing.get("body") or "")))
        return step

    def _create(self, issue: Issue, body: str, plan: Plan) -> str:
        assert self.github is not None
        if not plan.create:
            return "no_status_comment"
        doc = self.github.create_comment(issue.repo, issue.number, body)
        self._learn_identity(doc)
        if self.github.last_attempts == 1 and doc.get("id") is not None:
            self.memory.shown.put(issue.stream, Shown(int(doc["id"]), body))  # else list next time
        return "created"

    def _keep_record(self, issue: Issue, record: Record, *, reacted: bool, created: bool) -> None:
        """Record the comment id (``check`` after a retried create) and the run reacted to."""
        hit = self.memory.shown.get(issue.stream)
        comment_id = hit.comment_id if hit else None if created else record.comment_id
        run, check = issue.run if reacted else record.run, created and hit is None
        if record.exists and (comment_id, run, check) == (record.comment_id, record.run, record.check):
            return self.memory.records.put(issue.stream, record)
        if not (record.exists or reacted or created):
            return self.memory.records.put(issue.stream, record)
        cause = Cause(correlation_id=issue.correlation_id, actor="notifier")
        self.memory.records.put(issue.stream, self.records.put(
            issue.stream, Record(comment_id, run, check=check), after=record, cause=cause))

    def _untrusted(self, issue: Issue, who: tuple[str, str],
                   comments: Callable[[], list[dict[str, Any]]]) -> str:
        assert self.github is not None
        if self.memory.told.get(issue.stream) or self._find_mine(comments(), UNTRUSTED_MARKER):
            self.memory.told.put(issue.stream, True)
            return "already_told"
        self.github.create_comment(issue.repo, issue.number, self._untrusted_body(who))
        self.memory.told.put(issue.stream, True)
        return "told_untrusted"

    def _untrusted_body(self, who: tuple[str, str]) -> str:
        return render_untrusted(sender=who[0], permission=who[1],
                                trusted=self.settings.trusted_permissions,
                                labels=self.settings.required_labels)

    def _labels(self, issue: Issue, wanted: str) -> str:
        """No ``GET issue``: the labels at trigger time stand in for GitHub's (trade-off in
        ``verdict_labels.changes_since_trigger``). 404 on a removal counts as already gone."""
        assert self.github is not None
        known = self.memory.labelled.get(issue.stream)
        applied = known[1] if known is not None and known[0] == issue.run else None
        add, remove = verdict_labels.changes_since_trigger(wanted, issue.labels, applied)
        if add:
            self._ensure_repo_labels(issue.repo)
            self.github.add_labels(issue.repo, issue.number, add)
        for label in remove:
            self.github.remove_label(issue.repo, issue.number, label)
        self.memory.labelled.put(issue.stream, (issue.run, wanted))
        return f"labels+{len(add)}-{len(remove)}"

    def _print(self, issue: Issue, plan: Plan) -> str:
        """Local mode without a token: what would be posted, each change once (the GitHub path's
        per-container memory: a later event of a finished run prints nothing new)."""
        memory, stream, said = self.memory, issue.stream, []
        if plan.status:
            body, hit = render_status(plan.status), memory.shown.get(stream)
            if hit is None or status_step(hit.body, body, plan) == "edit":
                said.append(f"status comment would read:\n{body}\n")
                memory.shown.put(stream, Shown(0, body))
        if plan.untrusted and not memory.told.get(stream):
            said.append(f"would tell the sender, once:\n{self._untrusted_body(plan.untrusted)}\n")
            memory.told.put(stream, True)
        if plan.label and memory.labelled.get(stream) != (issue.run, plan.label):
            said.append(f"would set label {plan.label!r} and remove the other verdict labels\n")
            memory.labelled.put(stream, (issue.run, plan.label))
        for text in said:
            self.out(f"[notifier] {issue.repo}#{issue.number}: {text}")
        return "printed" if said else "printed_already"
