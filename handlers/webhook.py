"""Lambda entry: the GitHub webhook (:func:`gip.services.webhook.handle`).

Settings, the webhook secret and the ``Issues`` service are built once per container; the
store (pynamodb, botocore) is imported on the first delivery that needs it, boto3 only when
the secret comes from Secrets Manager.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gip import observability
from gip.container import once
from gip.domain.qualify import Rules
from gip.errors import ConfigError
from gip.services.webhook import Response, answer, handle, webhook_secrets

if TYPE_CHECKING:
    from gip.config import Settings
    from gip.services.issues import Issues

log = logging.getLogger(__name__)


@observability.entry("webhook")
def handler(event: Mapping[str, Any], context: Any = None) -> Response:
    """Lambda entry point (API Gateway REST or HTTP API proxy integration)."""
    with observability.log_keys(correlation_id=_delivery_id(event)):
        try:
            settings, secrets = _settings(), _secrets()
        except ConfigError as exc:
            log.error("webhook: %s; every delivery is refused until it is configured", exc)
            return answer(500, "error", "webhook is not configured")
        return handle(event, rules=Rules(settings.required_labels, settings.bot_login),
                      secrets=secrets, max_bytes=settings.max_body_bytes, issues=_issues)


def _delivery_id(event: Mapping[str, Any]) -> str | None:
    """X-GitHub-Delivery, the correlation id of every event this delivery leads to."""
    headers = event.get("headers") if isinstance(event, Mapping) else None
    if not isinstance(headers, Mapping):
        return None
    found = next((v for k, v in headers.items() if str(k).lower() == "x-github-delivery"), None)
    return str(found)[:100] if found else None


# --- per-container state: settings, secret and the Issues service, each built once ---------
# `once` keeps no failed build: a ConfigError is raised again until it is fixed.


def reset() -> None:
    """Forget the cached settings, secret and service (tests; a new container)."""
    for builder in (_settings, _secrets, _issues):
        builder.cache_clear()


@once
def _settings() -> Settings:
    from gip.config import Settings

    try:
        return Settings.from_env()
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc


@once
def _secrets() -> tuple[str, ...]:
    """GITHUB_WEBHOOK_SECRET (+ GITHUB_WEBHOOK_SECRET_NEXT), else the Secrets Manager secret."""
    secrets = webhook_secrets(os.environ.get("GITHUB_WEBHOOK_SECRET"), os.environ.get("GITHUB_WEBHOOK_SECRET_NEXT"))
    if not secrets:
        secrets = webhook_secrets(_fetch_secret(_settings().webhook_secret_id))
    if not secrets:
        raise ConfigError("no webhook secret configured (GITHUB_WEBHOOK_SECRET or WEBHOOK_SECRET_ID)")
    observability.hide(*secrets)  # never in a log line, whatever logs it
    return secrets  # only a usable secret is cached: a fix needs no new container


def _fetch_secret(secret_id: str) -> str:
    import boto3
    import botocore.exceptions

    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise ConfigError(f"webhook secret {secret_id!r} unreadable: {code}") from exc
    return str(value.get("SecretString") or "")


@once
def _issues() -> Issues:
    from gip.services.issues import Issues

    return Issues.from_settings(_settings())
