"""Our own record of the status comment on each issue, so the notifier finds it without
listing the issue's comments (docs/internals.md, "Finding our status comment").

One ``StatusCommentPosted`` event per change, on a ``comment-<repo>#<n>`` stream: the comment
id and the run whose 👀 the notifier made (its first write for a run). Not on the issue stream:
the worker appends there with an expected version, and a notifier append in between would
make it drop a verdict. The stream is not projected (replay --verify folds account and issue
streams only).

- No record and run 1: we never wrote on this issue (every create since this change is
  recorded), so the comment is created without a listing.
- A record without a comment id: none was created yet (the 👀 came first), create directly.
- No record and a later run (an issue from before this change, or after a restore), or a
  record with ``check`` (a create was retried, so a second comment may exist): list once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gip.adapters.github import errors as gh_errors
from gip.adapters.github.client import GitHubClient
from gip.domain.envelope import Cause, Envelope, comment_stream, new_event
from gip.domain.issue import SKIPPED, Issue
from gip.errors import ConcurrencyConflict

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.store.protocols import EventStore

log = logging.getLogger(__name__)

POSTED = "StatusCommentPosted"


@dataclass(frozen=True)
class Record:
    """The status comment (None: none yet) and the run whose reaction is on GitHub."""

    comment_id: int | None
    run: int
    version: int = 0  # of the comment stream, for the next append
    exists: bool = True  # False: nothing recorded for this issue
    check: bool = False  # a create was retried: a second comment may exist, list to find them


class StatusRecords:
    """Read and append the records; build once per container."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def get(self, issue_stream: str) -> Record | None:
        if self.store is None:
            return None
        events = self.store.read(comment_stream(issue_stream))
        if not events:
            return None
        data, version = events[-1]["data"], int(events[-1]["version"])
        comment_id = data.get("comment_id")
        return Record(int(comment_id) if isinstance(comment_id, int) else None, int(data["run"]), version,
                      check=bool(data.get("check")))

    def put(self, issue_stream: str, record: Record, *, after: Record | None, cause: Cause) -> Record:
        """Append ``record`` after ``after`` (the one read); a lost race keeps the other's."""
        stream = comment_stream(issue_stream)
        event = new_event(POSTED, stream=stream, cause=cause,
                          data={"comment_id": record.comment_id, "run": record.run,
                                **({"check": True} if record.check else {})})
        try:
            stored = self.store.append(stream, after.version if after else 0, [event])[0]
        except ConcurrencyConflict:
            log.info("%s: the status record moved meanwhile; kept the stored one", stream)
            return self.get(issue_stream) or record
        return Record(record.comment_id, record.run, int(stored["version"]), check=record.check)


NONE = Record(None, 0, 0, exists=False)


def reaction(issue: Issue, queued: bool, reacted_run: int,
             history: Callable[[], list[Envelope]]) -> tuple[str, int | None] | None:
    """The reaction this run is owed, and the command comment it goes on (None: the issue).

    👀 once a run is queued (``queued``: its plan may create the status comment), if the record
    does not show it made yet; 😕 on an untrusted command (never on a label)."""
    if queued and reacted_run != issue.run:
        content = "eyes"
    elif issue.status == SKIPPED and issue.reason == "untrusted_sender" and issue.trigger == "command":
        content = "confused"
    else:
        return None
    if issue.trigger != "command":
        return content, None
    for event in reversed(history()):  # the command comment is in this run's IssueReceived
        if event["type"] == "IssueReceived" and event["data"].get("run") == issue.run:
            comment_id = event["data"].get("comment_id")
            return content, comment_id if isinstance(comment_id, int) else None
    return content, None


def react(github: GitHubClient, issue: Issue, content: str, comment_id: int | None) -> None:
    """Add ``content`` on the command comment, else on the issue; GitHub keeps one per user."""
    try:
        if comment_id is not None:
            github.add_comment_reaction(issue.repo, comment_id, content)
        else:
            github.add_reaction(issue.repo, issue.number, content)
    except gh_errors.NotFound:  # the command comment was deleted: nothing to react to
        log.info("%s: nothing to react to", issue.stream)
