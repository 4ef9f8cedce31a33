"""The event envelope (DESIGN.md, "Event catalog"), stream ids and time formatting.

Events are plain dicts shaped like :class:`Envelope`; they are validated against
``schemas/`` when appended. ``version`` is assigned by the store at append time.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypedDict, TypeGuard

from gip.errors import GipError

# JSON as json.loads returns it: narrow with isinstance before use.
JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]

ACCOUNT_RE = re.compile(r"^\d{12}$")
ISSUE_KEY_RE = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>\d+)$")


class Envelope(TypedDict):
    event_id: str
    type: str
    schema_version: int
    stream: str
    version: int
    occurred_at: str
    correlation_id: str
    causation_id: str | None
    actor: str
    # Shaped per type by schemas/<Type>.json. Still Any: the reducers, gatekeeper and worker
    # index it directly; narrowing it is the rest of issue 13's "no Any at the seams".
    data: dict[str, Any]


@dataclass(frozen=True)
class Cause:
    """Who and what caused an event: carried into every envelope a command writes."""

    correlation_id: str
    actor: str
    causation_id: str | None = None

    def after(self, event: Envelope, *, actor: str | None = None) -> Cause:
        """The cause of an event that follows ``event`` in the same run."""
        return Cause(
            correlation_id=event["correlation_id"],
            actor=actor or self.actor,
            causation_id=event["event_id"],
        )

    @classmethod
    def from_event(cls, event: Envelope, *, actor: str) -> Cause:
        return cls(correlation_id=event["correlation_id"], actor=actor, causation_id=event["event_id"])


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z``: sorts lexically, replays to the ms."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset); naive values are taken as UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


def issue_stream(repo: str, number: int) -> str:
    return f"issue-{repo}#{number}"


def delivery_stream(delivery_id: str) -> str:
    return f"delivery-{delivery_id}"


def comment_stream(issue: str) -> str:
    """The notifier's record of its status comment on the issue stream ``issue``."""
    return "comment-" + issue.removeprefix("issue-")


def normalize_stream(value: str) -> str:
    """Accept a full stream id, a bare 12-digit account id or ``owner/repo#N``."""
    if value.startswith(("account-", "issue-", "delivery-", "comment-")):
        return value
    if ACCOUNT_RE.match(value):
        return account_stream(value)
    m = ISSUE_KEY_RE.match(value)
    if m:
        return issue_stream(m["repo"], int(m["number"]))
    raise ValueError(f"not a stream id, account id or owner/repo#N: {value!r}")


def split_issue_stream(stream: str) -> tuple[str, int]:
    """``issue-owner/repo#7`` → ``("owner/repo", 7)``."""
    m = ISSUE_KEY_RE.match(stream.removeprefix("issue-"))
    if not m or not stream.startswith("issue-"):
        raise ValueError(f"not an issue stream: {stream!r}")
    return m["repo"], int(m["number"])


def new_event(
    type_: str,
    *,
    stream: str,
    data: dict[str, Any],
    cause: Cause,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    schema_version: int | None = None,
) -> Envelope:
    """Build an envelope; ``version`` is 0 until the store assigns it."""
    from gip.domain.schemas import current_version  # local: keeps import light

    return Envelope(
        event_id=event_id or str(uuid.uuid4()),
        type=type_,
        schema_version=schema_version if schema_version is not None else current_version(type_),
        stream=stream,
        version=0,
        occurred_at=iso(occurred_at or utcnow()),
        correlation_id=cause.correlation_id,
        causation_id=cause.causation_id,
        actor=cause.actor,
        data=data,
    )


def dumps(event: Mapping[str, object]) -> str:
    """Canonical JSON for storage: sorted keys, no whitespace, exact ints (no floats invented)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(body: str) -> Envelope:
    """An envelope as :func:`dumps` stored it (trusted: it was validated on append)."""
    event: Envelope = json.loads(body)
    return event


class NotAnEnvelope(GipError, ValueError):
    """An SQS message body that carries no event envelope (retrying cannot fix it)."""


def envelope_from_sqs_body(body: str) -> Envelope:
    """The envelope in an SQS message body: an EventBridge event's ``detail``, or a bare
    envelope. The one parser for every queue consumer (the Lambdas and the worker)."""
    parsed: JSONValue = json.loads(body)
    doc = parsed.get("detail", parsed) if isinstance(parsed, dict) else None
    if not _carries_envelope(doc):
        raise NotAnEnvelope("SQS message does not carry an event envelope")
    return doc


def _carries_envelope(doc: JSONValue | None) -> TypeGuard[Envelope]:
    # Checked as far as consumers rely on (type, stream): the rest was validated on append.
    return isinstance(doc, dict) and "type" in doc and "stream" in doc
