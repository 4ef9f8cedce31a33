"""The pure half of the GitHub client: HTTP shapes and GitHub's rules, no I/O.

``build_request``, ``decode_response``, ``retry_after``, ``reset_in``, ``next_link`` and
``backoff`` are tested with plain values; :mod:`gip.adapters.github.client` sends.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from gip.adapters.github import errors

API_VERSION = "2022-11-28"
USER_AGENT = "github-issue-processor"
SECONDARY_LIMIT_WAIT_S = 60.0  # "wait for at least one minute" when GitHub gives no header
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Request:
    """One HTTP request, ready to send. ``repr`` hides the Authorization header."""

    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = None

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url})"


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


# ---------------------------------------------------------------- pure: requests


def repo_path(repo: str) -> str:
    """``owner/name`` → ``/repos/owner/name``; refuses anything that could escape the path."""
    if not _REPO.match(repo) or ".." in repo:
        raise errors.Invalid(0, f"not an owner/name repository: {repo!r}")
    return f"/repos/{repo}"


def build_request(
    method: str,
    path: str,
    *,
    base_url: str,
    token: str | None,
    json_body: Any = None,
    params: Mapping[str, str | int] | None = None,
) -> Request:
    """Build a request for ``path`` under ``base_url`` (``https://ghe.example/api/v3`` works).

    ``path`` may also be an absolute URL (a ``Link: rel="next"``), but only on the host of
    ``base_url``: the token is never sent anywhere else.
    """
    base = base_url.rstrip("/")
    if path.startswith(("http://", "https://")):
        if urlsplit(path).netloc != urlsplit(base).netloc:
            raise errors.Invalid(0, f"refusing to follow a link off {urlsplit(base).netloc}")
        url = path
    else:
        url = base + "/" + path.lstrip("/")
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    return Request(method.upper(), url, headers, body)


# ---------------------------------------------------------------- pure: responses


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), else from an exhausted
    ``x-ratelimit-remaining``/``x-ratelimit-reset`` pair; ``None`` if neither says."""
    h = _lower(headers)
    value = h.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    if h.get("x-ratelimit-remaining", "").strip() == "0" and h.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(h["x-ratelimit-reset"]) - now) + 1.0  # reset is whole seconds
        except ValueError:
            return None
    return None


def reset_in(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds until ``x-ratelimit-reset`` (the primary window's end), if GitHub sent it."""
    raw = _lower(headers).get("x-ratelimit-reset", "").strip()
    try:
        return max(0.0, float(raw) - now) + 1.0 if raw else None
    except ValueError:
        return None


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


def decode_response(status: int, headers: Mapping[str, str], body: bytes, *,
                    now: float | None = None) -> Any:
    """Return the decoded JSON of a 2xx answer (``None`` when empty) or raise a typed error.

    ``now`` (epoch seconds) turns ``x-ratelimit-reset`` into a wait; it defaults to the wall
    clock, and tests pass it.
    """
    if 200 <= status < 300:
        return json.loads(body) if body and body.strip() else None
    if 300 <= status < 400:  # only reached for writes: reads follow redirects
        raise errors.Moved(status, _lower(headers).get("location", ""))
    message = _message(body)
    when = time.time() if now is None else now
    if status in (403, 429):
        wait = retry_after(headers, now=when)
        if wait is None and (status == 429 or "rate limit" in message.lower()):
            wait = SECONDARY_LIMIT_WAIT_S
        if wait is not None:
            raise errors.RateLimited(status, wait, message, reset_in=reset_in(headers, now=when))
        raise errors.Forbidden(status, message)
    if status >= 500:
        raise errors.ServerError(status, message)
    if status in (404, 410):
        raise errors.NotFound(status, message)
    if status == 401:
        raise errors.Unauthorized(status, message)
    raise errors.Invalid(status, message)


def next_link(headers: Mapping[str, str]) -> str | None:
    """The ``rel="next"`` URL of a paginated answer, if any."""
    for part in _lower(headers).get("link", "").split(","):
        url, _, params = part.partition(";")
        if re.search(r'rel="?next"?', params):
            return url.strip().strip("<>")
    return None


def backoff(attempt: int, *, base_s: float, cap_s: float, rand: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base·2^attempt)]."""
    return min(cap_s, base_s * (2**attempt)) * rand
