"""Typed GitHub errors, all under :class:`gip.errors.GipError`.

``Retryable`` errors (rate limits, 5xx, an unreachable host) mean "try again later": a
consumer lets the SQS record fail so it comes back. Anything else is a definite answer.
"""

from __future__ import annotations

from gip import errors as core


class GitHubError(core.GipError):
    """GitHub answered with an error status (or not at all)."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message
        super().__init__(f"GitHub answered {status}" + (f": {message}" if message else ""))


class Retryable(GitHubError):
    """A failure that goes away with time: the caller may retry later."""


class RateLimited(Retryable):
    """Primary or secondary rate limit (403/429), or the shared gate still closed (status 0):
    ``retry_after`` is in seconds."""

    def __init__(self, status: int, retry_after: float, message: str = "", *,
                 reset_in: float | None = None) -> None:
        self.retry_after = retry_after
        self.reset_in = reset_in  # seconds to x-ratelimit-reset, when GitHub said
        super().__init__(status, message or f"rate limited, retry after {retry_after:.0f}s")


class ServerError(Retryable):
    """GitHub answered 5xx."""


class Unreachable(Retryable):
    """No HTTP answer at all (connection refused, timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class NotFound(GitHubError, core.NotFound):
    """404/410: the repository, issue, comment or label does not exist (or is hidden)."""


class Unauthorized(GitHubError):
    """401: the token is missing, expired or revoked."""


class Forbidden(GitHubError):
    """403 that is not a rate limit: the token lacks the permission."""


class Invalid(GitHubError):
    """Another 4xx (400, 409, 422): the request itself is wrong; retrying will not help."""


class Moved(GitHubError):
    """3xx: the resource moved (a transferred issue). Writes never follow it: the new location
    is named here instead."""

    def __init__(self, status: int, location: str) -> None:
        self.location = location
        super().__init__(status, f"moved to {location or 'an unnamed location'}; not followed")
