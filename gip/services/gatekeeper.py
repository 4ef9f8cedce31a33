"""Gatekeeper: may a received run be queued? (DESIGN.md, data flow step 3.)

SQS batch in; each record body is an EventBridge event whose ``detail`` is an
``IssueReceived`` envelope. For each, check that the issue is still open and still carries a
required label, and that the sender has a trusted collaborator permission (issue forms
auto-apply labels for anyone, so a label alone proves nothing). Then append ``IssueQueued``
or ``IssueSkipped``, and nothing else: the gatekeeper makes no GitHub write, so the write
spacing never sits between a trusted delivery and the issue queue. The 👀 (or 😕 for an
untrusted command) is the notifier's first write for the run (docs/internals.md,
"Queue first, then react").

- Idempotent per event: a run that is no longer RECEIVED has been decided; nothing is appended.
- GitHub reads per run, only those that decide something: the webhook payload carries the
  issue's labels as of delivery (a closed issue never gets this far), so ``GET issue`` is
  made only when the delivery arrived more than ``PAYLOAD_FRESH_S`` ago (a retried or
  backlogged record) or the trigger is a command. The permission is cached per (repo, sender)
  for ``PERMISSION_TTL_S`` per container, and the repository's ``reproduce.yml`` (or its absence)
  per repo for ``Settings.repo_config_ttl_s`` (``REPO_CONFIG_TTL_S``, 60 s): a burst of issues in
  one repository reads it once per container, and an edited file applies to the issues queued
  up to a minute later. A label removed after the decision is honoured by
  the worker's re-check of the issue stream (``Issues.cancel`` on ``unlabeled``).
- GitHub 5xx/429 or an unreachable GitHub: the record fails and SQS retries it; nothing was
  appended, because GitHub is asked before anything is written. A rate limit stops the batch
  (:mod:`gip.adapters.github.consumer`).
- A 401 after the client's one retry with a fresh token, or a 403 that is not a rate limit (a
  token that does not cover the repository): ``IssueSkipped`` ``github_unauthorized`` /
  ``github_forbidden``, so the run ends and the issue can be triggered again once fixed.
- An untrusted sender: ``IssueSkipped`` only (the notifier answers a command with 😕, never
  a comment unless EXPLAIN_UNTRUSTED).
- Local mode without a token: the payload's ``author_association`` (OWNER, MEMBER,
  COLLABORATOR) stands in for the permission API, and the payload's labels for GitHub's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from gip.adapters.github import errors as gh_errors
from gip.adapters.github.app import AppNotInstalled, note_installation
from gip.adapters.github.client import GitHubClient, Permission
from gip.config import Settings
from gip.container import TtlCache
from gip.domain.envelope import Cause, Envelope, parse_iso, split_issue_stream, utcnow
from gip.domain.issue import RECEIVED
from gip.domain.qualify import has_required_label
from gip.errors import ConcurrencyConflict, GipError
from gip.services import repo_config

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.services.issues import Issues

log = logging.getLogger(__name__)

TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
PERMISSION_TTL_S = 300.0  # a revoked permission still queues for up to 5 minutes per container
PAYLOAD_FRESH_S = 60.0  # a payload younger than this (by the delivery's arrival) is not re-read
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


def must_reread(*, trigger: str, age_s: float, fresh_s: float = PAYLOAD_FRESH_S) -> bool:
    """Re-read the issue from GitHub? Only a stale payload or a command (whose payload is the
    comment's, and says nothing of labels added or removed since) need it."""
    return trigger == "command" or age_s > fresh_s


def association_permission(association: str) -> Permission:
    """Local-mode stand-in: OWNER/MEMBER/COLLABORATOR count as ``write``."""
    perm = "write" if association.upper() in TRUSTED_ASSOCIATIONS else "read"
    return Permission(perm, perm)


# ---------------------------------------------------------------- shell


class PermissionCache(TtlCache[tuple[str, str], Permission]):
    """Collaborator permissions per (repo, user), for ``ttl_s`` seconds per container."""

    def __init__(self, *, ttl_s: float = PERMISSION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s=ttl_s, clock=clock)


class Gatekeeper:
    def __init__(self, *, issues: Issues, github: GitHubClient | None, settings: Settings,
                 permissions: PermissionCache | None = None,
                 config_files: TtlCache[str, str | None] | None = None,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.issues = issues
        self.github = github
        self.settings = settings
        self.permissions = permissions or PermissionCache()
        self.config_files = config_files or TtlCache(ttl_s=settings.repo_config_ttl_s)  # repo → reproduce.yml
        self.now = now

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
                return "already_decided"
            age_s = (self.now() - parse_iso(envelope["occurred_at"])).total_seconds()
            decision = self._check(repo, number, data, reread=must_reread(
                trigger=str(data.get("trigger", "")), age_s=age_s))
            if decision.type == "IssueQueued" and self.github is not None:  # reproduce.yml (issue 17)
                decision = Decision(*repo_config.decide(self.github, repo, decision.data,
                                                        read=partial(self._config_file, self.github, repo)))
            cause = Cause.from_event(envelope, actor=ACTOR)
            try:
                self.issues.record(repo, number, decision.type, decision.data, cause=cause,
                                   expected=issue)
            except ConcurrencyConflict:
                continue
            log.info("%s#%s run %s: %s %s", repo, number, run, decision.type,
                     decision.data.get("reason", ""))
            return decision.type
        return "already_decided"

    def _config_file(self, github: GitHubClient, repo: str) -> str | None:
        """The repository's reproduce.yml text (None: no file), through the per-container cache."""
        return self.config_files.get(repo, lambda: github.get_file(repo, repo_config.CONFIG_PATH))

    def _check(self, repo: str, number: int, data: Mapping[str, Any], *, reread: bool = True) -> Decision:
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
                if reread:
                    doc = github.get_issue(repo, number)
                else:  # an App not installed here must say so (permission() reads a 404 as "none")
                    github.credentials.token_for(repo)
                    doc = {"labels": list(data.get("labels", []))}
                permission = self.permissions.get((repo, sender), lambda: github.permission(repo, sender))
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
            via = "collaborator_api"  # labels: GitHub's now, or the fresh payload's
        return decide(run=run, sender=sender, state=state, labels=labels, permission=permission,
                      required=self.settings.required_labels,
                      trusted=self.settings.trusted_permissions, checked_via=via)
