"""The GitHub credentials: a personal access token or a GitHub App, read once per container.

A GitHub App (:mod:`gip.adapters.github.app`) wins over a token when both are configured (with
a notice). The App's settings:

- in Lambda, the JSON ``{"app_id": ..., "private_key": ...}`` of ``GITHUB_APP_SECRET_ID``
  (``<prefix>/github-app``); its placeholder ``unset`` means "no App";
- elsewhere (``--local``), ``GITHUB_APP_ID`` with ``GITHUB_APP_PRIVATE_KEY`` (the PEM) or
  ``GITHUB_APP_PRIVATE_KEY_FILE``; else the secret is tried.

The personal access token:

- In Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set) the token is the ``SecretString`` of
  ``GITHUB_TOKEN_SECRET_ID``; a missing secret is a :class:`ConfigError`.
- Elsewhere (``--local``), ``GITHUB_TOKEN`` wins; else the secret is tried; with neither,
  there is no token and the notifier prints what it would post.

The token is returned as a plain ``str`` and kept only inside :class:`TokenSource` and the
client; neither puts it in a ``repr`` or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gip.adapters.github.app import AppConfig
from gip.adapters.github.auth import Credentials
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

    def __call__(self) -> str | None:
        """The token, for a client that takes a zero-argument callable (one that takes a
        Credentials uses the methods below, and so calls ``invalidate`` after a 401)."""
        return self.get()

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


def load_app_config(settings: Any, *, env: Mapping[str, str] | None = None,
                    secrets_client: Callable[[], Any] | None = None) -> AppConfig | None:
    """The GitHub App's id and key, or None when no App is configured (ConfigError if broken)."""
    e = os.environ if env is None else env
    in_lambda = bool(e.get("AWS_LAMBDA_FUNCTION_NAME"))
    if not in_lambda and e.get("GITHUB_APP_ID"):
        return AppConfig(e["GITHUB_APP_ID"].strip(), _local_key(e))
    if not in_lambda and not e.get("GITHUB_APP_SECRET_ID"):
        return None  # local mode reads the App from the environment only, unless told
    from botocore.exceptions import BotoCoreError, ClientError

    secret_id = settings.github_app_secret_id
    try:
        resp = (secrets_client or _default_client)().get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError):
        return None  # no App secret (an older stack): the token is used
    value = str(resp.get("SecretString") or "").strip()
    if value.lower() in PLACEHOLDERS:
        return None
    try:
        doc = json.loads(value)
        return AppConfig(str(doc["app_id"]), str(doc["private_key"]))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"GitHub App secret {secret_id} is not "
                          '{"app_id": ..., "private_key": ...}: store it with '
                          "bootstrap.py --github-app-id ID --github-app-key-file key.pem") from None


def _local_key(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_APP_PRIVATE_KEY"):
        return env["GITHUB_APP_PRIVATE_KEY"]
    path = env.get("GITHUB_APP_PRIVATE_KEY_FILE")
    if not path:
        raise ConfigError("GITHUB_APP_ID is set but neither GITHUB_APP_PRIVATE_KEY nor "
                          "GITHUB_APP_PRIVATE_KEY_FILE is")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read GITHUB_APP_PRIVATE_KEY_FILE {path}: {exc.strerror}") from None


def credentials_from_settings(settings: Any, *, env: Mapping[str, str] | None = None,
                              transport: Any = None) -> Credentials | None:
    """The App's credentials (checked with ``GET /app``), else the token's, else None.

    A broken App (bad key, unknown id, malformed secret) is a ConfigError here, except in
    Lambda: there it is logged as one line and every GitHub call fails with it (one line per
    record, no traceback), so the records wait in their queue until the secret is fixed.
    """
    source = TokenSource(secret_id=settings.github_token_secret_id, env=env)
    try:
        app = load_app_config(settings, env=env)
        if app is None:
            return source if source.get() else None
        from gip.adapters.github.app import AppCredentials

        if _has_token(source):
            log.warning("both a GitHub App (%s) and a token are configured: the App is used", app.app_id)
        creds = AppCredentials(app, base_url=settings.github_api_url, transport=transport)
        creds.check()
        return creds
    except ConfigError as exc:
        if not source.in_lambda:
            raise
        log.error("ConfigError: %s", exc)
        return BrokenCredentials(exc)


@dataclass(frozen=True)
class AppIdentity:
    """The App GitHub accepted: its id and slug (its comments are by ``<slug>[bot]``)."""

    app_id: str
    slug: str

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def line(self) -> str:
        return f"GitHub App {self.app_id} ({self.slug}): installation tokens per repository"


def check_app(settings: Any, *, env: Mapping[str, str] | None = None) -> AppIdentity | None:
    """Start-up (local) and deploy: the App GitHub accepted, None with no App; a ConfigError
    with one clear line if GitHub refuses it or the key is bad."""
    app = load_app_config(settings, env=env)
    if app is None:
        return None
    from gip.adapters.github.app import AppCredentials

    doc = AppCredentials(app, base_url=settings.github_api_url).check()
    return AppIdentity(app.app_id, str(doc.get("slug") or doc.get("name") or "app"))


class BrokenCredentials:
    """Credentials that fail every call with the configuration error they were built from."""

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    def token_for(self, repo: str | None) -> str | None:
        raise ConfigError(str(self.error))

    def invalidate(self, repo: str | None) -> None:
        pass

    def rate_key(self, repo: str | None) -> str:
        return "app"


def _has_token(source: TokenSource) -> bool:
    try:
        return source.get() is not None
    except ConfigError:
        return False


def _default_client() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def client_from_settings(settings: Any) -> Any:
    """The GitHub client of the two credential holders (gatekeeper, notifier), or None with no
    credentials (local mode: print instead). The client asks the credentials on every call,
    naming the repository: cached, and a rotated secret or an expired token is picked up."""
    from gip.adapters.github.client import GitHubClient

    creds = credentials_from_settings(settings)
    # (an App needs the client of issue 19, which asks a Credentials per repository)
    return None if creds is None else GitHubClient(base_url=settings.github_api_url,
                                                   token=creds)  # type: ignore[arg-type]
