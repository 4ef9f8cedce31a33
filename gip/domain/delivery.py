"""Pure webhook checks: signature, headers, media type, size and JSON body -> :class:`Delivery`.

No I/O here (in the spirit of gidgethub's ``sansio``): the Lambda adapter in
``handlers.webhook`` lowercases the headers, decodes base64 bodies and maps the typed errors
below to HTTP status codes through their ``status`` attribute.

Order of checks, cheapest and least trusting first:

1. body over the cap                      -> :class:`PayloadTooLarge` (413; its ``delivery_id``
                                             is set only when the signature is valid, so
                                             the webhook records GitHub's deliveries only)
2. missing GitHub headers                 -> :class:`BadRequest` (400)
3. media type other than JSON             -> :class:`UnsupportedMediaType` (415)
4. signature not valid for any secret     -> :class:`InvalidSignature` (401)
5. body not a UTF-8 JSON object           -> :class:`BadRequest` (400)
6. a string that UTF-8 cannot carry        -> :class:`BadRequest` (400)

Check 6 exists because JSON's ``\\udfff`` escape decodes to a lone surrogate: valid JSON, yet
no UTF-8 text (hence no DynamoDB item or bus event) can hold it, so redelivery never helps.

The signature is checked over the raw bytes before anything is parsed, so nothing an unsigned
sender controls reaches ``json.loads``.
See https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from gip.domain.envelope import JSONValue
from gip.errors import ConfigError, GipError

EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
SIGNATURE_HEADER = "x-hub-signature-256"
CONTENT_TYPE_HEADER = "content-type"
REQUIRED_HEADERS = (EVENT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER)

# GitHub delivery ids are GUIDs; the id becomes part of a DynamoDB key (delivery-<id>), so keep
# it to a safe alphabet and length rather than trusting whatever the header holds.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")


class WebhookRejected(GipError):
    """A delivery was refused; ``status`` is the HTTP answer, ``reason`` a short safe text."""

    status = 400

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadRequest(WebhookRejected):
    """Missing or malformed GitHub headers, or a body that is not a JSON object (400)."""

    status = 400


class InvalidSignature(WebhookRejected):
    """X-Hub-Signature-256 does not match the body under any configured secret (401)."""

    status = 401


class PayloadTooLarge(WebhookRejected):
    """The body is larger than MAX_BODY_BYTES (413)."""

    status = 413

    def __init__(self, reason: str, *, delivery_id: str = "", event: str = "", size: int = 0) -> None:
        super().__init__(reason)
        self.delivery_id, self.event, self.size = delivery_id, event, size


class UnsupportedMediaType(WebhookRejected):
    """The content type is not JSON, e.g. GitHub's application/x-www-form-urlencoded (415)."""

    status = 415


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery."""

    event: str
    delivery_id: str
    payload: Mapping[str, object] = field(repr=False)
    hook_id: str = ""

    @property
    def action(self) -> str:
        """``payload.action`` when it is a string, else ''."""
        action = self.payload.get("action")
        return action if isinstance(action, str) else ""


def signature_for(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body`` under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, *, signature: str, secrets: Sequence[str]) -> None:
    """Raise unless ``signature`` is ``sha256=<hmac of body>`` under one of ``secrets``.

    ``secrets`` holds the current secret and, during a rotation, the next one. Every secret is
    compared (no early exit) with :func:`hmac.compare_digest`, so timing reveals neither which
    secret matched nor how much of the digest did. Raises :class:`ConfigError` when no secret
    is configured: fail closed, never accept.
    """
    usable = [s for s in secrets if s]
    if not usable:
        raise ConfigError("no webhook secret configured")
    match = _SIGNATURE.fullmatch(signature.strip().lower())
    if match is None:
        raise InvalidSignature("malformed X-Hub-Signature-256")
    given = match.group(0).encode("ascii")
    ok = False
    for secret in usable:
        ok |= hmac.compare_digest(signature_for(body, secret).encode("ascii"), given)
    if not ok:
        raise InvalidSignature("signature does not match")


def parse_secrets(raw: str | None, next_secret: str | None = None) -> tuple[str, ...]:
    """The secrets a signature may match: ``raw`` (GITHUB_WEBHOOK_SECRET or the Secrets Manager
    value) and, during a rotation, ``next_secret`` (GITHUB_WEBHOOK_SECRET_NEXT).

    A secret is never split on commas: it may contain one. Only the deprecated form, ``raw``
    holding ``"current,next"`` with no separate next secret, is also tried part by part (the
    whole value stays a candidate); :func:`is_comma_form` tells the caller to warn about it.
    """
    whole = (raw or "").strip()
    secrets = [whole, (next_secret or "").strip()]
    if is_comma_form(raw, next_secret):
        parts = [part.strip() for part in whole.split(",") if part.strip()]
        secrets = [*parts, whole] if parts else []  # "," alone is no secret: fail closed
    return tuple(dict.fromkeys(s for s in secrets if s))


def is_comma_form(raw: str | None, next_secret: str | None = None) -> bool:
    """Is ``raw`` the deprecated ``"current,next"`` form (no separate next secret)?"""
    return "," in (raw or "") and not (next_secret or "").strip()


def parse_delivery(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[str],
    max_bytes: int,
) -> Delivery:
    """Check one delivery and return it; ``headers`` must have lowercase names.

    Raises a :class:`WebhookRejected` subclass (see the module docstring for the order) or
    :class:`ConfigError` when no secret is configured.
    """
    if len(body) > max_bytes:
        raise _too_large(headers, body, secrets=secrets, max_bytes=max_bytes)
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name, "").strip()]
    if missing:
        raise BadRequest(f"missing header(s): {', '.join(missing)}")
    event = headers[EVENT_HEADER].strip()
    delivery_id = headers[DELIVERY_HEADER].strip()
    if not _EVENT_NAME.fullmatch(event):
        raise BadRequest("malformed X-GitHub-Event")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise BadRequest("malformed X-GitHub-Delivery")
    _require_json_media_type(headers.get(CONTENT_TYPE_HEADER, ""))
    verify_signature(body, signature=headers[SIGNATURE_HEADER], secrets=secrets)
    payload = _decode_object(body)
    hook_id = headers.get("x-github-hook-id", "").strip()
    return Delivery(event=event, delivery_id=delivery_id, payload=payload, hook_id=hook_id)


def _too_large(headers: Mapping[str, str], body: bytes, *, secrets: Sequence[str],
               max_bytes: int) -> PayloadTooLarge:
    """The 413, naming the delivery only if it is GitHub's (valid id and signature)."""
    reason = f"body is {len(body)} bytes, the limit is {max_bytes}"
    delivery_id = headers.get(DELIVERY_HEADER, "").strip()
    event = headers.get(EVENT_HEADER, "").strip()
    try:
        verify_signature(body, signature=headers.get(SIGNATURE_HEADER, ""), secrets=secrets)
    except (InvalidSignature, ConfigError):
        return PayloadTooLarge(reason)
    if not (_DELIVERY_ID.fullmatch(delivery_id) and _EVENT_NAME.fullmatch(event)):
        return PayloadTooLarge(reason)
    return PayloadTooLarge(reason, delivery_id=delivery_id, event=event, size=len(body))


def _require_json_media_type(content_type: str) -> None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = media_type[:60] or "none"
        raise UnsupportedMediaType(
            f"content type {shown!r} is not supported; set the webhook to application/json"
        )


def _decode_object(body: bytes) -> Mapping[str, object]:
    try:
        payload: JSONValue = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest("body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("body is not a JSON object")
    require_representable(payload)
    return payload


def _refuse_constant(name: str) -> NoReturn:
    # NaN / Infinity are Python extensions, not JSON: nothing downstream could re-encode them.
    raise ValueError(f"{name} is not JSON")


def require_representable(payload: object) -> None:
    """Raise BadRequest, naming the JSON path, if a key or string is not valid UTF-8 text.

    Iterative, so a deeply nested body cannot exhaust the stack here.
    """
    stack: list[tuple[str, object]] = [("", payload)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _require_utf8(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _require_utf8(key, f"{path}.<key>" if path else "<key>")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _require_utf8(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = _safe_path(path)
        raise BadRequest(
            f"body is not representable: {where} holds a lone surrogate "
            f"(U+{ord(text[exc.start]):04X}), which UTF-8 cannot encode"
        ) from exc


def _safe_path(path: str) -> str:
    # The path is built from hostile keys: keep the reason short, printable and encodable.
    shown = "".join(c if c.isascii() and c.isprintable() else "?" for c in path)
    return shown[:80] or "the body"
