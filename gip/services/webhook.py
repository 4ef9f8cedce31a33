"""The GitHub webhook service: API Gateway proxy event in, small JSON answer out (DESIGN.md step 1).
The Lambda entry and its per-container state are ``handlers/webhook.py``.

A thin adapter around pure code: header names are lowercased and base64 bodies decoded here,
``gip.domain.delivery`` checks size, headers, media type, signature and JSON, and
``gip.domain.qualify`` decides. A qualifying delivery becomes ``Issues.receive`` (one read of
the issue row, one TransactWriteItems: delivery marker + IssueReceived + row), a cancel
becomes ``Issues.cancel``. The webhook never calls GitHub, SQS or EventBridge: the outbox
publisher does, from the table's stream.

Answers: 200 ping; 202 accepted / ignored (with the reason); 400 / 401 / 413 / 415 for bad
requests, including payloads that could never be stored (nothing appended). A 413 for a
delivery whose signature is valid also writes an ``oversized-<delivery id>`` marker (events
table, docs/internals.md "Oversized deliveries") for the redelivery sweep; 500 when no secret
is configured (it never accepts) or storage fails, throttling included (GitHub shows the failed
delivery, which can be redelivered: the delivery id makes that safe). A 202 "duplicate" or
"already active" is only ever answered on a condition that DynamoDB itself evaluated.

Imports stay light: the event store (pynamodb, botocore) is imported on the first delivery
that needs it, boto3 only when the secret comes from Secrets Manager.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from gip.domain.delivery import (
    BadRequest,
    PayloadTooLarge,
    WebhookRejected,
    is_comma_form,
    parse_delivery,
    parse_secrets,
)
from gip.domain.envelope import Cause
from gip.domain.qualify import Cancel, Ignore, Pong, Receive, Rules, qualify
from gip.errors import (
    ConcurrencyConflict,
    ConfigError,
    GipError,
    IllegalTransition,
    InvalidEvent,
)

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

Response = dict[str, Any]
ACTOR = "webhook"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def handle(
    event: Mapping[str, Any],
    *,
    rules: Rules,
    secrets: tuple[str, ...],
    max_bytes: int,
    issues: Callable[[], Any],
) -> Response:
    """Answer one proxy event; ``issues()`` gives the ``Issues`` service, built on first use."""
    delivery_id = ""
    try:
        headers, body = request_parts(event)
        delivery_id = _UNSAFE.sub("?", headers.get("x-github-delivery", ""))[:100]  # for logs
        delivery = parse_delivery(headers, body, secrets=secrets, max_bytes=max_bytes)
        decision = qualify(delivery, rules)
        response = _act(decision, delivery.delivery_id, issues)
    except PayloadTooLarge as exc:
        response = answer(413, "rejected", exc.reason)
        if exc.delivery_id:
            _record_oversized(issues, exc)
    except WebhookRejected as exc:
        response = answer(exc.status, "rejected", exc.reason)
    except ConfigError as exc:
        log.error("webhook: %s; every delivery is refused until it is configured", exc)
        response = answer(500, "error", "webhook is not configured")
    except InvalidEvent as exc:  # the payload's data breaks the schema: redelivery cannot help
        log.error("webhook: delivery %s not recordable: %s", delivery_id, exc)
        response = answer(400, "rejected", f"payload cannot be recorded: field '{exc.field}'")
    except GipError as exc:
        log.error("webhook: delivery %s not stored: %s", delivery_id, exc)
        response = answer(500, "error", "could not store the delivery; redeliver it")
    except Exception:  # the boundary: an unexpected storage failure is a 500, not a 502
        log.exception("webhook: delivery %s failed", delivery_id)
        response = answer(500, "error", "could not store the delivery; redeliver it")
    log.info("webhook: delivery=%s status=%s %s", delivery_id or "-", response["statusCode"],
             response["body"])
    return response


def _act(decision: Pong | Ignore | Receive | Cancel, delivery_id: str,
         issues: Callable[[], Any]) -> Response:
    if isinstance(decision, Pong):
        return answer(200, "ok", decision.reason)
    if isinstance(decision, Ignore):
        return answer(decision.status, "ignored", decision.reason)
    cause = Cause(correlation_id=delivery_id, actor=ACTOR)
    if isinstance(decision, Receive):  # a command's key is its comment: a re-sent one is a duplicate
        result = issues().receive(delivery_id=decision.dedupe_key or delivery_id, repo=decision.repo,
                                  number=decision.number, data=decision.data, cause=cause)
        if result.appended:
            return answer(202, "accepted", f"run {result.event['data']['run']} received")
        return answer(202, "ignored", result.reason.replace("_", " "))
    for attempt in (1, 2):  # a run that moved on between the read and the write: re-decide once
        try:
            skipped = issues().cancel(decision.repo, decision.number, reason=decision.reason,
                                      cause=cause)
            break
        except (ConcurrencyConflict, IllegalTransition):
            if attempt == 2:
                raise
    if skipped is None:
        return answer(202, "ignored", "no queued run to cancel")
    return answer(202, "accepted", f"run {skipped['data']['run']} skipped ({decision.reason})")


def webhook_secrets(current: str | None, next_secret: str | None = None) -> tuple[str, ...]:
    """GITHUB_WEBHOOK_SECRET and GITHUB_WEBHOOK_SECRET_NEXT (rotation); the old comma form
    (``current,next`` in one value) still works, with a deprecation notice."""
    if is_comma_form(current, next_secret):
        log.warning("webhook: the webhook secret holds a comma: read as the deprecated "
                    "'current,next' form (and as one secret); put the next secret in "
                    "GITHUB_WEBHOOK_SECRET_NEXT instead")
    return parse_secrets(current, next_secret)


def _record_oversized(issues: Callable[[], Any], exc: PayloadTooLarge) -> None:
    """The ``oversized-<delivery id>`` marker; a failure to write it is logged, still a 413."""
    from datetime import UTC, datetime

    try:
        issues().store.note_oversized(exc.delivery_id, event=exc.event,
                                      at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    except Exception as err:  # the boundary: the answer is a 413 either way
        log.error("webhook: oversized delivery %s (%d bytes) not recorded: %s",
                  exc.delivery_id, exc.size, type(err).__name__)
        return
    log.warning("webhook: delivery %s (%s, %d bytes) is over the cap: answered 413, recorded",
                exc.delivery_id, exc.event, exc.size)


def request_parts(event: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
    """Lowercased headers and the raw body bytes of an API Gateway proxy event."""
    raw = event.get("headers") or {}
    if not raw:  # REST API events may carry only multiValueHeaders
        raw = {k: v[-1] for k, v in (event.get("multiValueHeaders") or {}).items()
               if isinstance(v, list) and v}
    headers = {k.lower(): v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise BadRequest("body is not text")
    if event.get("isBase64Encoded"):
        try:
            return headers, base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("body is not valid base64") from exc
    try:
        return headers, body.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: not what GitHub sends
        raise BadRequest("body is not valid UTF-8") from exc


def http_event(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A proxy event for a raw HTTP request (local mode's server): the body kept byte-exact."""
    return {
        "httpMethod": "POST",
        "path": "/webhook",
        "headers": dict(headers),
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def answer(status: int, state: str, reason: str) -> Response:
    """A small JSON response: ``{"status": state, "reason": reason}``."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"status": state, "reason": reason}),
    }
