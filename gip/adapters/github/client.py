"""A small GitHub REST client: pure request building and response decoding, one transport.

The pure half (``build_request``, ``decode_response``, ``retry_after``, ``next_link``) knows
HTTP shapes and GitHub's rules but does no I/O, so it is tested with plain values.
:class:`GitHubClient` is the imperative shell: it sends through an injected ``transport``
and waits through injected ``sleep``/``clock``, so tests never really wait.

Retries (bounded by ``max_attempts`` and a time ``budget_s``):
- 403/429 rate limits wait ``Retry-After`` or until ``x-ratelimit-reset``, as GitHub asks
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api);
  a wait longer than ``max_wait_s`` is not slept: ``RateLimited`` goes up, and the SQS
  record comes back later instead of holding the Lambda.
- 5xx and unreachable hosts back off exponentially with full jitter.
Writes (POST/PATCH/PUT/DELETE) go one at a time, at least ``write_interval_s`` apart, which is
GitHub's advice against secondary rate limits
(https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from gip.adapters.github import errors

DEFAULT_API_URL = "https://api.github.com"
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


@dataclass(frozen=True)
class Permission:
    """A collaborator's access: legacy ``permission`` (admin/write/read/none) and ``role_name``
    (admin/maintain/write/triage/read or a custom role)."""

    permission: str
    role_name: str


class Transport(Protocol):
    def __call__(self, request: Request) -> Response: ...


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
    message = _message(body)
    if status in (403, 429):
        wait = retry_after(headers, now=time.time() if now is None else now)
        if wait is None and (status == 429 or "rate limit" in message.lower()):
            wait = SECONDARY_LIMIT_WAIT_S
        if wait is not None:
            raise errors.RateLimited(status, wait, message)
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


# ---------------------------------------------------------------- shell


class RequestsTransport:
    """Sends a :class:`Request` with one ``requests.Session`` (connection reuse)."""

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        import requests  # imported here: light module import for cold starts

        self._requests = requests
        self._session = requests.Session()
        self._timeout = timeout_s

    def __call__(self, request: Request) -> Response:
        try:
            r = self._session.request(
                request.method, request.url, headers=dict(request.headers),
                data=request.body, timeout=self._timeout,
            )
        except self._requests.RequestException as exc:
            raise errors.Unreachable(type(exc).__name__) from exc
        return Response(r.status_code, dict(r.headers), r.content)


class GitHubClient:
    """The GitHub calls the gatekeeper and the notifier make, with bounded retries."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_API_URL,
        token: str | Callable[[], str | None] | None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        max_attempts: int = 5,
        max_wait_s: float = 30.0,
        budget_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        write_interval_s: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._transport = transport or RequestsTransport()
        self._sleep, self._clock, self._rand = sleep, clock, rand
        self.max_attempts, self.max_wait_s, self.budget_s = max_attempts, max_wait_s, budget_s
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._write_interval = write_interval_s
        self._write_lock = threading.Lock()
        self._last_write = float("-inf")
        self._deadline: float | None = None
        self._local = threading.local()  # attempts of this thread's last call

    def __repr__(self) -> str:
        return f"GitHubClient({self.base_url})"

    def set_deadline(self, remaining_s: float | None) -> None:
        """No retry wait may end later than ``remaining_s`` from now (``None``: no deadline).

        Handlers set it from the Lambda context, so a slow GitHub fails the record in time
        instead of timing out the whole batch.
        """
        self._deadline = None if remaining_s is None else self._clock() + remaining_s

    @property
    def last_attempts(self) -> int:
        """How many times this thread's last call was sent (more than 1: it was retried, so a
        write whose first answer was lost may have been applied twice)."""
        return int(getattr(self._local, "attempts", 0))

    @property
    def out_of_time(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    # -- core loop

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, str | int] | None = None) -> Any:
        return self._call(method, path, json_body=json_body, params=params)[0]

    def _call(self, method: str, path: str, *, json_body: Any = None,
              params: Mapping[str, str | int] | None = None) -> tuple[Any, Mapping[str, str]]:
        token = self._token() if callable(self._token) else self._token
        req = build_request(method, path, base_url=self.base_url, token=token,
                            json_body=json_body, params=params)
        if req.method not in WRITE_METHODS:
            return self._send_with_retries(req)
        with self._write_lock:  # writes one at a time, spaced out
            wait = self._last_write + self._write_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
            try:
                return self._send_with_retries(req)
            finally:
                self._last_write = self._clock()

    def _send_with_retries(self, req: Request) -> tuple[Any, Mapping[str, str]]:
        started = self._clock()
        for attempt in range(self.max_attempts):
            self._local.attempts = attempt + 1
            try:
                resp = self._transport(req)
                return decode_response(resp.status, resp.headers, resp.body,
                                       now=self._clock()), resp.headers
            except errors.RateLimited as exc:
                if exc.retry_after > self.max_wait_s:
                    raise
                wait = exc.retry_after
                last: errors.Retryable = exc
            except errors.Retryable as exc:
                wait = backoff(attempt, base_s=self._backoff[0], cap_s=self._backoff[1],
                               rand=self._rand())
                last = exc
            wake = self._clock() + wait
            out_of_time = wake - started > self.budget_s or (
                self._deadline is not None and wake > self._deadline)
            if attempt + 1 >= self.max_attempts or out_of_time:
                raise last
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the calls we make

    def login(self) -> str:
        """Our own login (``GET /user``)."""
        return str(self.request("GET", "/user")["login"])

    def get_issue(self, repo: str, number: int) -> dict[str, Any]:
        return dict(self.request("GET", f"{repo_path(repo)}/issues/{int(number)}"))

    def list_comments(self, repo: str, number: int, *, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every comment on the issue, oldest first, following ``Link: rel="next"``."""
        out: list[dict[str, Any]] = []
        url: str | None = f"{repo_path(repo)}/issues/{int(number)}/comments"
        params: Mapping[str, str | int] | None = {"per_page": 100}
        for _ in range(max_pages):
            if url is None:
                break
            page, headers = self._call("GET", url, params=params)
            out.extend(page or [])
            url, params = next_link(headers), None
        return out

    def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        path = f"{repo_path(repo)}/issues/{int(number)}/comments"
        return dict(self.request("POST", path, json_body={"body": body}))

    def edit_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}"
        return dict(self.request("PATCH", path, json_body={"body": body}))

    def delete_comment(self, repo: str, comment_id: int) -> None:
        """Delete a comment; one already gone is fine."""
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}"
        with contextlib.suppress(errors.NotFound):
            self.request("DELETE", path)

    def add_reaction(self, repo: str, number: int, content: str) -> None:
        path = f"{repo_path(repo)}/issues/{int(number)}/reactions"
        self.request("POST", path, json_body={"content": content})

    def add_comment_reaction(self, repo: str, comment_id: int, content: str) -> None:
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}/reactions"
        self.request("POST", path, json_body={"content": content})

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        path = f"{repo_path(repo)}/issues/{int(number)}/labels"
        self.request("POST", path, json_body={"labels": list(labels)})

    def remove_label(self, repo: str, number: int, label: str) -> None:
        """Remove one label; a label that is not there is fine."""
        path = f"{repo_path(repo)}/issues/{int(number)}/labels/{quote(label, safe='')}"
        with contextlib.suppress(errors.NotFound):
            self.request("DELETE", path)

    def permission(self, repo: str, user: str) -> Permission:
        """The user's permission on ``repo``; someone GitHub does not know gets ``none``."""
        path = f"{repo_path(repo)}/collaborators/{quote(user, safe='')}/permission"
        try:
            doc = self.request("GET", path)
        except errors.NotFound:
            return Permission("none", "none")
        perm = str(doc.get("permission") or "none")
        return Permission(perm, str(doc.get("role_name") or perm))
