"""GitHub App authentication: an RS256 JWT for the App, an installation token per repository.

- The App signs a JWT (PyJWT with ``cryptography``): ``iat`` 60 s in the past (clock drift),
  ``exp`` 9 minutes out (GitHub refuses more than 10), ``iss`` the app id. It is re-signed a
  minute before it expires. Only App-level calls use it: minting tokens, finding a
  repository's installation, listing the App's webhook deliveries.
- Calls about a repository use that repository's installation token, minted with
  ``POST /app/installations/{id}/access_tokens`` and cached per installation until 5 minutes
  before its ``expires_at``. :meth:`AppCredentials.invalidate` (the client calls it after a 401)
  drops it, so the one retry mints a new one.
- The installation of a repository comes from the webhook (``installation.id``, carried in
  ``IssueReceived``; :func:`note_installation`), else from ``GET /repos/{o}/{r}/installation``.
  A repository the App is not installed on raises :class:`AppNotInstalled`.

Installation ids are not secrets: they are remembered for the whole process. Tokens and the key
never appear in a ``repr`` or a log line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gip.adapters.github import errors
from gip.adapters.github.client import DEFAULT_API_URL, GitHubClient, Transport, repo_path
from gip.errors import ConfigError

JWT_BACKDATE_S = 60  # iat in the past: GitHub's advice against clock drift
JWT_LIFETIME_S = 540  # exp 9 min after now (GitHub's maximum is 10)
JWT_REFRESH_S = 60  # re-sign when less than this is left
TOKEN_MARGIN_S = 300  # an installation token is used until 5 min before its expires_at

_installations: dict[str, int] = {}  # repo (casefolded) -> installation id, for this process
_installations_lock = threading.Lock()


class AppNotInstalled(errors.NotFound):
    """The GitHub App is not installed on this repository (or has lost access to it).

    A NotFound, as GitHub answers for a repository an installation cannot see: whoever
    handles a vanished issue (the notifier) stops there instead of retrying; the gatekeeper
    names it (``IssueSkipped`` reason ``app_not_installed``)."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        super().__init__(404, f"the GitHub App is not installed on {repo}")


@dataclass(frozen=True)
class AppConfig:
    """The App's id and PEM private key (``repr`` hides the key)."""

    app_id: str
    private_key: str = field(repr=False)


def note_installation(repo: str, installation_id: object) -> None:
    """Remember the installation a webhook named for ``repo`` (ignored unless a positive int)."""
    if isinstance(installation_id, int) and not isinstance(installation_id, bool) and installation_id > 0:
        with _installations_lock:
            _installations[repo.casefold()] = installation_id


def known_installation(repo: str) -> int | None:
    with _installations_lock:
        return _installations.get(repo.casefold())


def forget_installation(repo: str) -> None:
    with _installations_lock:
        _installations.pop(repo.casefold(), None)


# ---------------------------------------------------------------- pure


def load_private_key(pem: str) -> Any:
    """The RSA private key of ``pem``; a ConfigError (never the key) if it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError("the GitHub App private key is not a PEM private key "
                          "(download it from the App's settings: 'Generate a private key')") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the GitHub App private key is not an RSA key")
    return key


def app_jwt(app_id: str, key: Any, *, now: float) -> str:
    """The App's JWT at ``now`` (epoch seconds): RS256, iat 60 s back, exp 9 min out, iss."""
    import jwt

    claims = {"iat": int(now) - JWT_BACKDATE_S, "exp": int(now) + JWT_LIFETIME_S, "iss": str(app_id)}
    return str(jwt.encode(claims, key, algorithm="RS256"))


def expires_epoch(expires_at: str) -> float:
    """GitHub's ``expires_at`` (``2016-07-11T22:14:10Z``) as epoch seconds."""
    return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- shell


@dataclass
class _Token:
    value: str = field(repr=False)
    good_until: float  # epoch seconds: expires_at minus the margin


class AppCredentials:
    """The :class:`gip.adapters.github.auth.Credentials` of a GitHub App."""

    def __init__(self, config: AppConfig, *, base_url: str = DEFAULT_API_URL,
                 transport: Transport | None = None, clock: Callable[[], float] = time.time) -> None:
        self.app_id = str(config.app_id).strip()
        if not self.app_id.isdigit():
            raise ConfigError(f"GITHUB_APP_ID must be the App's numeric id, not {self.app_id[:20]!r}")
        self._key = load_private_key(config.private_key)
        self._clock = clock
        self._lock = threading.RLock()
        self._jwt: _Token | None = None
        self._tokens: dict[int, _Token] = {}
        self.minted = 0  # installation tokens minted by this instance (tests, figures)
        self.app = GitHubClient(base_url=base_url, token=self.jwt, transport=transport,
                                clock=clock, write_interval_s=0.0)

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id})"

    def jwt(self) -> str:
        """The App's JWT, re-signed a minute before it expires."""
        now = self._clock()
        with self._lock:
            if self._jwt is None or now >= self._jwt.good_until:
                self._jwt = _Token(app_jwt(self.app_id, self._key, now=now),
                                   now + JWT_LIFETIME_S - JWT_REFRESH_S)
            return self._jwt.value

    def check(self) -> dict[str, Any]:
        """``GET /app``: a ConfigError naming the problem if GitHub refuses the App's JWT."""
        try:
            return dict(self.app.request("GET", "/app"))
        except (errors.Unauthorized, errors.NotFound, errors.Forbidden) as exc:
            raise ConfigError(f"GitHub refused GitHub App {self.app_id} (HTTP {exc.status}: "
                              f"{exc.message or 'unknown app id, or the key is not this App'})") from exc

    # -- the Credentials contract

    def token_for(self, repo: str | None) -> str | None:
        """The installation token for ``repo``; the App's JWT for calls about no repository."""
        if repo is None:
            return self.jwt()
        installation = self.installation_for(repo)
        with self._lock:
            cached = self._tokens.get(installation)
            if cached is not None and self._clock() < cached.good_until:
                return cached.value
        try:
            token = self._mint(installation)
        except errors.NotFound:  # the installation named by an old event is gone: look again
            forget_installation(repo)
            installation = self.installation_for(repo)
            try:
                token = self._mint(installation)
            except errors.NotFound as exc:
                raise AppNotInstalled(repo) from exc
        with self._lock:
            self._tokens[installation] = token
        return token.value

    def invalidate(self, repo: str | None) -> None:
        with self._lock:
            if repo is None:
                self._jwt = None
                return
            installation = known_installation(repo)
            if installation is not None:
                self._tokens.pop(installation, None)

    def rate_key(self, repo: str | None) -> str:
        """``installation-<id>``: GitHub limits an App per installation (``app`` otherwise)."""
        return "app" if repo is None else f"installation-{self.installation_for(repo)}"

    # -- GitHub calls with the JWT

    def installation_for(self, repo: str) -> int:
        known = known_installation(repo)
        if known is not None:
            return known
        try:
            doc = self.app.request("GET", f"{repo_path(repo)}/installation")
        except errors.NotFound as exc:
            raise AppNotInstalled(repo) from exc
        note_installation(repo, int(doc["id"]))
        return int(doc["id"])

    def _mint(self, installation: int) -> _Token:
        doc = self.app.request("POST", f"/app/installations/{int(installation)}/access_tokens")
        self.minted += 1
        return _Token(str(doc["token"]), expires_epoch(str(doc["expires_at"])) - TOKEN_MARGIN_S)
