"""The GitHub token: read once per container, never logged.

- In Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set) the token is the ``SecretString`` of
  ``GITHUB_TOKEN_SECRET_ID``; a missing secret is a :class:`ConfigError`.
- Elsewhere (``--local``), ``GITHUB_TOKEN`` wins; else the secret is tried; with neither,
  there is no token and the notifier prints what it would post.

The token is returned as a plain ``str`` and kept only inside :class:`TokenSource` and the
client; neither puts it in a ``repr`` or a log line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from gip.errors import ConfigError

log = logging.getLogger(__name__)
CACHE_SECONDS = 900.0  # a rotated token is picked up within 15 min without a cold start
PLACEHOLDERS = frozenset({"", "unset", "changeme", "placeholder"})  # the template's SecretString


class TokenSource:
    """Fetches the token lazily and caches it for ``CACHE_SECONDS``."""

    def __init__(
        self,
        *,
        secret_id: str,
        env: Mapping[str, str] | None = None,
        secrets_client: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._env = os.environ if env is None else env
        self._client_factory = secrets_client or _default_client
        self._clock = clock
        self._value: str | None = None
        self._fetched_at: float | None = None

    def __repr__(self) -> str:
        return f"TokenSource(secret_id={self._secret_id!r})"

    @property
    def in_lambda(self) -> bool:
        return bool(self._env.get("AWS_LAMBDA_FUNCTION_NAME"))

    def get(self) -> str | None:
        """The token, or ``None`` in local mode when there is none."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at > CACHE_SECONDS:
            self._value = self._fetch()
            self._fetched_at = now
        return self._value

    def invalidate(self, repo: str | None = None) -> None:
        """Forget the cached token (after a 401, the secret may have been rotated)."""
        self._fetched_at = None

    # -- the Credentials contract (gip.adapters.github.auth): one token for every repository

    def token_for(self, repo: str | None) -> str | None:
        return self.get()

    def rate_key(self, repo: str | None) -> str:
        return "token"  # a PAT's limits are per user: one bucket for the deployment

    def _fetch(self) -> str | None:
        if not self.in_lambda and self._env.get("GITHUB_TOKEN"):
            return self._env["GITHUB_TOKEN"].strip()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self._client_factory().get_secret_value(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            if not self.in_lambda:  # local mode: no token means "print what would be posted"
                log.warning("no GitHub token (GITHUB_TOKEN unset, secret %s unreadable: %s)",
                            self._secret_id, code or type(exc).__name__)
                return None
            raise ConfigError(f"cannot read GitHub token secret {self._secret_id}: "
                              f"{code or type(exc).__name__}") from exc
        value = str(resp.get("SecretString") or "").strip()
        if value.lower() in PLACEHOLDERS:
            if self.in_lambda:  # never fall back to trusting payloads in AWS
                raise ConfigError(f"GitHub token secret {self._secret_id} is not set: "
                                  "put the token in it (aws secretsmanager put-secret-value)")
            return None
        return value


def _default_client() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def client_from_settings(settings: Any) -> Any:
    """The GitHub client of the two token holders (gatekeeper, notifier), or None with no
    token (local mode: print instead). The client asks the source on every call: cached, and
    a rotated secret is picked up."""
    from gip.adapters.github.client import GitHubClient

    source = TokenSource(secret_id=settings.github_token_secret_id)
    return GitHubClient(base_url=settings.github_api_url, token=source.get) if source.get() else None
