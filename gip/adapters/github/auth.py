"""How the GitHub client gets a bearer token: the :class:`Credentials` contract.

Two implementations: a personal access token (:class:`gip.adapters.github.token.TokenSource`)
and a GitHub App (per-installation tokens, :mod:`gip.adapters.github.app`). The client asks
on every request, naming the repository the call is about (``None`` for calls that are not
about one repository, such as ``GET /user``), and calls :meth:`Credentials.invalidate` after
a 401 before its one retry.

``rate_key`` names the rate-limit bucket the token draws from, without revealing the token:
GitHub counts a PAT's limit per user and an App's per installation. The client keeps one
durable "blocked until" per key, shared by every container.
"""

from __future__ import annotations

from typing import Protocol


class Credentials(Protocol):
    def token_for(self, repo: str | None) -> str | None:
        """The bearer token for a call about ``repo`` (``None``: no token, local print mode)."""
        ...

    def invalidate(self, repo: str | None) -> None:
        """Forget the cached token for ``repo`` (after a 401: rotated or expired)."""
        ...

    def rate_key(self, repo: str | None) -> str:
        """The non-secret name of the rate-limit bucket a call about ``repo`` draws from."""
        ...
