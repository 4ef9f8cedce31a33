"""Gatekeeper: may a received run be queued? (DESIGN.md, data flow step 3.)

SQS batch in; each record body is an EventBridge event whose ``detail`` is an
``IssueReceived`` envelope. For each, re-check with GitHub that the issue is still open and
still carries a required label, and that the sender has a trusted collaborator permission
(issue forms auto-apply labels for anyone, so a label alone proves nothing). Then append
``IssueQueued`` (and add 👀) or ``IssueSkipped``.

- Idempotent per event: a run that is no longer RECEIVED has been decided; nothing is appended
  (a QUEUED run gets its 👀 again, which GitHub treats as a no-op, in case it was lost, unless
  this container already added it).
- GitHub reads per run: one ``GET issue`` (still open, still labelled: the design requires it
  now, not from the payload); the permission is cached per (repo, sender) for
  ``PERMISSION_TTL_S``.
- GitHub 5xx/429 or an unreachable GitHub: the record fails and SQS retries it; nothing was
  appended, because GitHub is asked before anything is written. A rate limit stops the batch
  (:mod:`gip.adapters.github.consumer`).
- A 401 after the client's one retry with a fresh token, or a 403 that is not a rate limit (a
  token that does not cover the repository): ``IssueSkipped`` ``github_unauthorized`` /
  ``github_forbidden``, so the run ends and the issue can be triggered again once fixed.
- An untrusted sender: ``IssueSkipped`` only; a command also gets 😕 (``confused``) on its
  comment, never a comment (the notifier's note is opt-in, EXPLAIN_UNTRUSTED).
- Local mode without a token: the payload's ``author_association`` (OWNER, MEMBER,
  COLLABORATOR) stands in for the permission API, and the payload's labels for GitHub's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gip.adapters.github import errors as gh_errors
from gip.adapters.github.app import AppNotInstalled, note_installation
from gip.adapters.github.client import GitHubClient, Permission
from gip.config import Settings
from gip.domain.envelope import Cause, Envelope, split_issue_stream
from gip.domain.issue import QUEUED, RECEIVED, SKIPPED
from gip.domain.qualify import has_required_label
from gip.errors import ConcurrencyConflict, GipError
from gip.services import repo_config

log = logging.getLogger(__name__)

TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
PERMISSION_TTL_S = 300.0
REACTIONS_REMEMBERED = 4096
ACTOR = "gatekeeper"


@dataclass(frozen=True)
class Decision:
    """The event to append: ``IssueQueued`` or ``IssueSkipped`` with its data."""

    type: str
    data: dict[str, Any]


# ---------------------------------------------------------------- pure


def is_trusted(permission: Permission, trusted: Iterable[str]) -> bool:
    """Trusted if the role (maintain, triage, custom…) or the legacy permission is listed."""
    allowed = {p.lower() for p in trusted}
    return permission.role_name.lower() in allowed or permission.permission.lower() in allowed


def decide(
    *,
    run: int,
    sender: str,
    state: str,
    labels: Iterable[str],
    permission: Permission,
    required: Iterable[str],
    trusted: Iterable[str],
    checked_via: str,
) -> Decision:
    """Queue or skip, from what GitHub (or the payload) says now."""
    if state != "open":
        return Decision("IssueSkipped", {"reason": "closed", "run": run, "sender": sender})
    if not has_required_label(labels, required):
        return Decision("IssueSkipped", {"reason": "label_removed", "run": run, "sender": sender})
    if not is_trusted(permission, trusted):
        return Decision("IssueSkipped", {"reason": "untrusted_sender", "run": run, "sender": sender,
                                         "permission": permission.role_name})
    return Decision("IssueQueued", {"run": run, "sender": sender,
                                    "permission": permission.role_name, "checked_via": checked_via})


def association_permission(association: str) -> Permission:
    """Local-mode stand-in: OWNER/MEMBER/COLLABORATOR count as ``write``."""
    perm = "write" if association.upper() in TRUSTED_ASSOCIATIONS else "read"
    return Permission(perm, perm)


# ---------------------------------------------------------------- shell


class PermissionCache:
    """Collaborator permissions per (repo, user), for ``ttl_s`` seconds per container."""

    def __init__(self, *, ttl_s: float = PERMISSION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl_s, clock
        self._entries: dict[tuple[str, str], tuple[float, Permission]] = {}

    def get(self, repo: str, user: str, fetch: Callable[[], Permission]) -> Permission:
        now = self._clock()
        hit = self._entries.get((repo, user))
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        value = fetch()
        self._entries[(repo, user)] = (now, value)
        return value


class Gatekeeper:
    def __init__(self, *, issues: Any, github: GitHubClient | None, settings: Settings,
                 permissions: PermissionCache | None = None) -> None:
        self.issues = issues
        self.github = github
        self.settings = settings
        self.permissions = permissions or PermissionCache()
        self._reacted: dict[tuple[str, int], None] = {}  # (stream, run) whose 👀 is on GitHub

    @classmethod
    def from_env(cls) -> Gatekeeper:
        from gip.adapters.github.consumer import client_for
        from gip.services.issues import Issues

        settings = Settings.from_env()
        return cls(issues=Issues.from_settings(settings), github=client_for(settings),
                   settings=settings)

    def handle(self, envelope: Envelope) -> str:
        """Decide one IssueReceived; returns what happened (for logs and tests)."""
        if envelope["type"] != "IssueReceived":
            return "ignored"
        repo, number = split_issue_stream(envelope["stream"])
        data = envelope["data"]
        run = int(data["run"])
        for _ in range(2):  # a concurrent cancel (closed/unlabeled) is re-read once
            issue = self.issues.get(repo, number)
            if issue is None:
                raise GipError(f"no issue row for {envelope['stream']} yet")
            if issue.run != run or issue.status != RECEIVED:
                if issue.run == run and (issue.stream, run) not in self._reacted:
                    if issue.status == QUEUED:
                        self._react(repo, number, data)
                    elif issue.status == SKIPPED and issue.reason == "untrusted_sender":
                        self._react(repo, number, data, "confused", comment_only=True)
                    self._remember_reaction(issue.stream, run)
                return "already_decided"
            decision = self._check(repo, number, data)
            if decision.type == "IssueQueued" and self.github is not None:  # reproduce.yml (issue 17)
                decision = Decision(*repo_config.decide(self.github, repo, decision.data))
            cause = Cause.from_event(envelope, actor=ACTOR)
            try:
                self.issues.record(repo, number, decision.type, decision.data, cause=cause,
                                   expected=issue)
            except ConcurrencyConflict:
                continue
            log.info("%s#%s run %s: %s %s", repo, number, run, decision.type,
                     decision.data.get("reason", ""))
            if decision.type == "IssueQueued":
                self._react(repo, number, data)
                self._remember_reaction(issue.stream, run)
            elif decision.data.get("reason") == "untrusted_sender":  # no comment: 😕 on the command
                self._react(repo, number, data, "confused", comment_only=True)
                self._remember_reaction(issue.stream, run)
            return decision.type
        return "already_decided"

    def _check(self, repo: str, number: int, data: Mapping[str, Any]) -> Decision:
        run, sender = int(data["run"]), str(data["sender"])
        if self.github is None:
            association = str(data.get("author_association") or "NONE")
            log.warning("no GitHub token: trusting the payload (author_association=%s) for %s#%s",
                        association, repo, number)
            state, labels = "open", [str(name) for name in data.get("labels", [])]
            permission, via = association_permission(association), "author_association"
        else:
            github = self.github
            note_installation(repo, data.get("installation_id"))
            try:
                doc = github.get_issue(repo, number)
                permission = self.permissions.get(repo, sender, lambda: github.permission(repo, sender))
            except AppNotInstalled:
                return Decision("IssueSkipped", {"reason": "app_not_installed", "run": run, "sender": sender})
            except gh_errors.NotFound:
                return Decision("IssueSkipped", {"reason": "not_found", "run": run, "sender": sender})
            except (gh_errors.Unauthorized, gh_errors.Forbidden) as exc:
                # after the one retry with a fresh token: the token is wrong or does not cover
                # the repository. The run ends, so the issue can be triggered again once fixed.
                reason = ("github_unauthorized" if isinstance(exc, gh_errors.Unauthorized)
                          else "github_forbidden")
                log.error("%s#%s: GitHub refused the token (%s): %s", repo, number, reason, exc)
                return Decision("IssueSkipped", {"reason": reason, "run": run, "sender": sender,
                                                 "detail": str(exc)[:200]})
            state = str(doc.get("state", "open"))
            labels = [lb["name"] if isinstance(lb, dict) else str(lb) for lb in doc.get("labels", [])]
            via = "collaborator_api"
        return decide(run=run, sender=sender, state=state, labels=labels, permission=permission,
                      required=self.settings.required_labels,
                      trusted=self.settings.trusted_permissions, checked_via=via)

    def _remember_reaction(self, stream: str, run: int) -> None:
        self._reacted[(stream, run)] = None
        while len(self._reacted) > REACTIONS_REMEMBERED:
            del self._reacted[next(iter(self._reacted))]  # oldest first

    def _react(self, repo: str, number: int, data: Mapping[str, Any], content: str = "eyes",
               *, comment_only: bool = False) -> None:
        """``content`` (👀) on the command comment if there is one, else on the issue
        (unless ``comment_only``: 😕 answers a command, never a label)."""
        if self.github is None:
            return
        comment_id = data.get("comment_id")
        try:
            if isinstance(comment_id, int):
                self.github.add_comment_reaction(repo, comment_id, content)
            elif not comment_only:
                self.github.add_reaction(repo, number, content)
        except gh_errors.NotFound:  # the comment was deleted: nothing to react to
            log.info("%s#%s: nothing to react to", repo, number)
        except (gh_errors.Forbidden, gh_errors.Unauthorized, gh_errors.Moved) as exc:
            log.warning("%s#%s: reaction %s refused: %s", repo, number, content, exc)
