"""Pure qualification rules: which verified deliveries start a run, cancel one, or are ignored.

``qualify(delivery, rules)`` looks only at the delivery. Whether something is appended is then
decided by the issue stream's state in the core: ``Issues.receive`` does not start a run for an
issue already received, queued or running, and ``Issues.cancel`` skips only a run still
waiting (received, queued, or failed and awaiting a retry).

What qualifies (DESIGN.md, data flow step 1):

- ``issues.labeled`` where ``payload.label`` is a required label;
- ``issues.opened`` / ``issues.reopened`` whose issue already carries a required label;
- ``issue_comment.created`` whose first line is ``/reproduce`` or ``/retry``; such a command is
  de-duplicated on its comment id (``Receive.dedupe_key``), not only on the delivery id, which
  the signature does not cover.

Senders of type Bot, and our own app, never start a run. ``issues.closed``, ``transferred``,
``deleted`` and the ``issues.unlabeled`` of the last required label ask to cancel a waiting run;
a bot may do that (a stale-bot closing the issue is a real reason to drop the run), our own app
may not. A ``labeled``/``unlabeled`` payload without ``label`` (GitHub's schema makes it
optional) is ignored, not refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from gip.domain.delivery import BadRequest, Delivery

COMMANDS = ("/reproduce", "/retry")
# The issue body travels in IssueReceived, through DynamoDB (400 KB items) and EventBridge
# (256 KB entries); cap its JSON-encoded size so the worst case still fits with room to spare.
MAX_BODY_JSON_BYTES = 64 * 1024
MAX_TITLE_CHARS = 256
# Everything IssueReceived carries, body included: far below DynamoDB's 400 KB item and
# EventBridge's 256 KB entry, so a payload that passes here can always be stored and published.
MAX_DATA_JSON_BYTES = 96 * 1024

_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True)
class Rules:
    """Settings the rules depend on: REQUIRED_LABELS and BOT_LOGIN."""

    required_labels: Collection[str]
    bot_login: str = ""

    def is_required(self, label: str) -> bool:
        return has_required_label([label], self.required_labels)


def has_required_label(labels: Iterable[str], required: Iterable[str]) -> bool:
    """Does any of ``labels`` match a required label? GitHub label names compare without case
    (``casefold``, the one comparison the webhook and the gatekeeper share)."""
    wanted = {name.casefold() for name in required}
    return any(label.casefold() in wanted for label in labels)


@dataclass(frozen=True)
class Pong:
    """``ping``: GitHub checking the hook (200)."""

    status: int = 200
    reason: str = "pong"


@dataclass(frozen=True)
class Ignore:
    """Nothing to do; answered 202 with the reason."""

    reason: str
    status: int = 202


@dataclass(frozen=True)
class Receive:
    """Append IssueReceived for ``repo#number`` unless the issue is already active.

    ``data`` is IssueReceived's data (schemas/IssueReceived.json) without ``run``, which the
    issue stream assigns.
    """

    repo: str
    number: int
    data: dict[str, object] = field(repr=False)
    dedupe_key: str = ""  # "comment-<id>" for a command; else the delivery id is the key


@dataclass(frozen=True)
class Cancel:
    """Append IssueSkipped(reason) if the issue's run is still waiting (``Issues.cancel``)."""

    repo: str
    number: int
    reason: str  # "closed" | "label_removed" | "transferred" | "deleted"


Decision = Pong | Ignore | Receive | Cancel


def qualify(delivery: Delivery, rules: Rules) -> Decision:
    """Decide what a verified delivery asks for. Raises BadRequest on a malformed payload.

    ``delivery`` comes from ``parse_delivery``, so every string in it is valid UTF-8 text.
    """
    event, action, payload = delivery.event, delivery.action, delivery.payload
    if event == "ping":
        return Pong()
    if event == "issues" and action in ("labeled", "opened", "reopened"):
        return _recordable(_trigger(payload, rules, action))
    if event == "issues" and action in ("closed", "unlabeled", "transferred", "deleted"):
        return _cancel(payload, rules, action)
    if event == "issue_comment" and action == "created":
        return _recordable(_command(payload, rules))
    if event in ("issues", "issue_comment"):
        return Ignore(f"{event}.{action or '?'} is not handled")
    return Ignore(f"event {event!r} is not handled")


def _trigger(payload: Mapping[str, object], rules: Rules, action: str) -> Decision:
    skip = _skip_sender(payload, rules)
    if skip:
        return Ignore(skip)
    issue = _obj(payload, "issue")
    labels = _label_names(issue)
    if action == "labeled":
        label = _required_label(payload, rules)
        if isinstance(label, Ignore):
            return label
    elif not any(rules.is_required(name) for name in labels):
        return Ignore("issue carries no required label")
    if issue.get("state") == "closed":
        return Ignore("issue is closed")
    receive = _receive(payload, issue, labels, trigger=action)
    if action == "labeled":
        receive.data["label"] = label
    return receive


def _command(payload: Mapping[str, object], rules: Rules) -> Decision:
    comment = _obj(payload, "comment")
    command = first_line_command(_opt_str(comment, "body"))
    if command is None:
        return Ignore("comment is not a command")
    skip = _skip_sender(payload, rules)
    if skip:
        return Ignore(skip)
    issue = _obj(payload, "issue")
    if issue.get("pull_request") is not None:
        return Ignore("comment is on a pull request")
    if issue.get("state") == "closed":
        return Ignore("issue is closed")
    labels = _label_names(issue)
    if not any(rules.is_required(name) for name in labels):
        return Ignore("issue carries no required label")
    receive = _receive(payload, issue, labels, trigger="command")
    receive.data["command"] = command
    # The commenter is the sender: their association is the one the token-less local fallback
    # should judge (the issue's own is its author's).
    receive.data["author_association"] = _opt_str(comment, "author_association") or "NONE"
    comment_id = comment.get("id")
    if isinstance(comment_id, int) and not isinstance(comment_id, bool):
        receive.data["comment_id"] = comment_id
        return Receive(receive.repo, receive.number, receive.data, dedupe_key=f"comment-{comment_id}")
    return receive


def _required_label(payload: Mapping[str, object], rules: Rules) -> str | Ignore:
    """The label a ``labeled``/``unlabeled`` delivery names, or an Ignore when it names none
    (``label`` is optional in GitHub's schema) or one that is not required."""
    if payload.get("label") is None:
        return Ignore(f"{payload.get('action')} without a label")
    label = _str(_obj(payload, "label"), "name", "label.name")
    return label if rules.is_required(label) else Ignore(f"label {label[:50]!r} is not a required label")


def _cancel(payload: Mapping[str, object], rules: Rules, action: str) -> Decision:
    if _is_own_app(_obj(payload, "sender"), rules):
        return Ignore("sender is our own app")
    issue = _obj(payload, "issue")
    required_left = any(rules.is_required(name) for name in _label_names(issue))
    if action == "unlabeled":
        label = _required_label(payload, rules)
        if isinstance(label, Ignore):
            return label
        if required_left:
            return Ignore("issue still carries a required label")
    repo, number = _repo(payload), _number(issue)
    reason = "label_removed" if action == "unlabeled" else action
    return Cancel(repo=repo, number=number, reason=reason)


def _recordable(decision: Decision) -> Decision:
    """Refuse (400) a Receive whose data could never be stored: redelivery would not help."""
    if isinstance(decision, Receive):
        size = len(json.dumps(decision.data, ensure_ascii=False).encode("utf-8"))
        if size > MAX_DATA_JSON_BYTES:
            raise BadRequest(f"issue fields are too large to record ({size} bytes of JSON, "
                             f"the limit is {MAX_DATA_JSON_BYTES})")
    return decision


def first_line_command(body: str) -> str | None:
    """``"/reproduce"`` or ``"/retry"`` if the comment's first non-blank line is exactly that."""
    lines = body.strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if first in COMMANDS else None


def _receive(
    payload: Mapping[str, object],
    issue: Mapping[str, object],
    labels: list[str],
    *,
    trigger: str,
) -> Receive:
    repo, number = _repo(payload), _number(issue)
    sender = _obj(payload, "sender")
    data: dict[str, object] = {
        "repo": repo,
        "number": number,
        "title": _opt_str(issue, "title")[:MAX_TITLE_CHARS],
        "labels": labels,
        "trigger": trigger,
        "sender": _str(sender, "login", "sender.login"),
        "html_url": _opt_str(issue, "html_url"),
        "author_association": _opt_str(issue, "author_association") or "NONE",
        "body": cap_json_size(_opt_str(issue, "body"), MAX_BODY_JSON_BYTES),
    }
    installation = payload.get("installation")  # a GitHub App's delivery names its installation
    installation_id = installation.get("id") if isinstance(installation, Mapping) else None
    if isinstance(installation_id, int) and not isinstance(installation_id, bool) and installation_id > 0:
        data["installation_id"] = installation_id
    return Receive(repo=repo, number=number, data=data)


def cap_json_size(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose JSON string encoding is at most ``limit`` bytes."""
    def size(s: str) -> int:
        return len(json.dumps(s, ensure_ascii=False).encode("utf-8"))

    if size(text) <= limit:
        return text
    lo, hi = 0, len(text)  # invariant: size(text[:lo]) <= limit < size(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid
    return text[:lo]


def _skip_sender(payload: Mapping[str, object], rules: Rules) -> str:
    sender = _obj(payload, "sender")
    if _is_own_app(sender, rules):
        return "sender is our own app"
    login = sender.get("login")
    if sender.get("type") == "Bot" or (isinstance(login, str) and login.endswith("[bot]")):
        return "sender is a bot"
    return ""


def _is_own_app(sender: Mapping[str, object], rules: Rules) -> bool:
    login = sender.get("login")
    if not rules.bot_login or not isinstance(login, str):
        return False
    return _bare(login) == _bare(rules.bot_login)


def _bare(login: str) -> str:
    return login.strip().casefold().removesuffix("[bot]")


def _repo(payload: Mapping[str, object]) -> str:
    repo = _str(_obj(payload, "repository"), "full_name", "repository.full_name")
    if not _REPO.fullmatch(repo):
        raise BadRequest("malformed repository.full_name")
    return repo


def _number(issue: Mapping[str, object]) -> int:
    number = issue.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**53:
        raise BadRequest("payload has no valid issue.number")
    return number


def _label_names(issue: Mapping[str, object]) -> list[str]:
    labels = issue.get("labels", [])
    if not isinstance(labels, list):
        raise BadRequest("issue.labels is not a list")
    names = [lab.get("name") for lab in labels if isinstance(lab, dict)]
    return [name for name in names if isinstance(name, str)]


def _obj(parent: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"payload has no {key} object")
    return value


def _str(parent: Mapping[str, object], key: str, name: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"payload has no {name}")
    return value


def _opt_str(parent: Mapping[str, object], key: str) -> str:
    value = parent.get(key)
    return value if isinstance(value, str) else ""
