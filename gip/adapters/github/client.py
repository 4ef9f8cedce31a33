"""A small GitHub REST client: one transport, bounded retries, a shared rate-limit gate.

The pure half (request building, response decoding) is :mod:`gip.adapters.github.wire`, whose
names are re-exported here. :class:`GitHubClient` is the imperative shell: it sends through an
injected ``transport`` and waits through injected ``sleep``/``clock``, so tests never wait.

Credentials (:mod:`gip.adapters.github.auth`): each repository-scoped call asks
``token_for(repo)``; a 401 calls ``invalidate(repo)`` and retries once, then raises
``Unauthorized``. A plain ``str`` or zero-argument callable works too (one bucket, "token").

Rate limits (docs/internals.md, "GitHub rate limits"), per ``rate_key(repo)``:
- before any request, the shared gate (:mod:`gip.adapters.github.ratelimit`) is read: while it
  is blocked, nothing is sent from any container;
- a 403/429 limit blocks the gate until ``Retry-After`` / ``x-ratelimit-reset``, doubled for
  consecutive limits up to the reset; a wait longer than ``max_wait_s`` (or past the Lambda's
  deadline) is not slept: ``RateLimited`` goes up and the batch loop hands the rest back;
- writes (POST/PATCH/PUT/DELETE) claim a slot from the gate, ``write_interval_s`` apart for
  the whole deployment, and never follow a redirect (a 3xx is ``Moved``, naming the location).
5xx and unreachable hosts back off exponentially with full jitter, within ``budget_s``.
"""

from __future__ import annotations

import base64
import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from gip.adapters.github import errors
from gip.adapters.github.auth import Credentials
from gip.adapters.github.ratelimit import MemoryRateGate, RateGate, blocked_wait
from gip.adapters.github.wire import (  # noqa: F401  (re-exported: the client's public names)
    API_VERSION,
    SECONDARY_LIMIT_WAIT_S,
    USER_AGENT,
    WRITE_METHODS,
    Request,
    Response,
    backoff,
    build_request,
    decode_response,
    next_link,
    repo_path,
    reset_in,
    retry_after,
)

DEFAULT_API_URL = "https://api.github.com"
# GitHub: "at least one second between each" mutation; 0.1 s more absorbs the network jitter
# between claiming a slot and the request's arrival (measured in tests/test_github_burst.py).
WRITE_INTERVAL_S = 1.1
TokenLike = Credentials | str | Callable[[], str | None] | None


@dataclass(frozen=True)
class Permission:
    """A collaborator's access: legacy ``permission`` (admin/write/read/none) and ``role_name``
    (admin/maintain/write/triage/read or a custom role)."""

    permission: str
    role_name: str


class Transport(Protocol):
    def __call__(self, request: Request) -> Response: ...


class StaticToken:
    """A plain token (or a zero-argument callable, e.g. an App JWT) as :class:`Credentials`."""

    def __init__(self, token: str | Callable[[], str | None] | None) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    def token_for(self, repo: str | None) -> str | None:
        return self._token() if callable(self._token) else self._token

    def invalidate(self, repo: str | None) -> None:
        """Nothing cached here: a callable is asked again anyway."""

    def rate_key(self, repo: str | None) -> str:
        return "token"


def as_credentials(token: TokenLike) -> Credentials:
    if token is None or isinstance(token, str) or not hasattr(token, "token_for"):
        return StaticToken(token)  # type: ignore[arg-type]
    return token  # type: ignore[return-value]


class RequestsTransport:
    """Sends a :class:`Request` with one ``requests.Session`` (connection reuse). Only reads
    follow redirects: a write that meets a 3xx is not replayed somewhere else."""

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
                allow_redirects=request.method not in WRITE_METHODS,
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
        token: TokenLike,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        max_attempts: int = 5,
        max_wait_s: float = 30.0,
        budget_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        write_interval_s: float = WRITE_INTERVAL_S,
        gate: RateGate | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = as_credentials(token)
        self.gate: RateGate = gate or MemoryRateGate()
        self._transport = transport or RequestsTransport()
        self._sleep, self._clock, self._rand = sleep, clock, rand
        self.max_attempts, self.max_wait_s, self.budget_s = max_attempts, max_wait_s, budget_s
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._write_interval = write_interval_s
        self._write_lock = threading.Lock()
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

    def blocked_for(self, repo: str | None = None) -> float:
        """Seconds the shared gate still blocks calls about ``repo`` (0: open)."""
        key = self.credentials.rate_key(repo)
        return max(0.0, self.gate.state(key).blocked_until - self._clock())

    # -- core loop

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, str | int] | None = None, repo: str | None = None) -> Any:
        return self._call(method, path, json_body=json_body, params=params, repo=repo)[0]

    def _call(self, method: str, path: str, *, json_body: Any = None,
              params: Mapping[str, str | int] | None = None,
              repo: str | None = None) -> tuple[Any, Mapping[str, str]]:
        for attempt in (1, 2):  # a 401: the credentials forget the token, and one retry
            token = self.credentials.token_for(repo)
            req = build_request(method, path, base_url=self.base_url, token=token,
                                json_body=json_body, params=params)
            try:
                if req.method not in WRITE_METHODS:
                    return self._send_with_retries(req, repo)
                with self._write_lock:  # this container's writes one at a time
                    return self._send_with_retries(req, repo)
            except errors.Unauthorized:
                self.credentials.invalidate(repo)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_or_raise(self, wait: float, started: float, exc: errors.Retryable,
                       attempt: int) -> None:
        wake = self._clock() + wait
        out_of_time = wake - started > self.budget_s or (
            self._deadline is not None and wake > self._deadline)
        if attempt + 1 >= self.max_attempts or out_of_time:
            raise exc
        self._sleep(wait)

    def _send_with_retries(self, req: Request, repo: str | None) -> tuple[Any, Mapping[str, str]]:
        started = self._clock()
        key = self.credentials.rate_key(repo)
        for attempt in range(self.max_attempts):
            if req.method in WRITE_METHODS:  # every send of a write takes a deployment-wide slot
                slot = self.gate.claim_write(key, now=self._clock(), interval=self._write_interval)
                if slot > self._clock():
                    self._sleep(slot - self._clock())
            gate = self.gate.state(key)
            closed = gate.blocked_until - self._clock()
            if closed > 0:  # blocked by this or another container: send nothing until then
                limited = errors.RateLimited(0, closed, f"GitHub calls blocked for {closed:.0f}s")
                if closed > self.max_wait_s:
                    raise limited
                self._wait_or_raise(closed, started, limited, attempt)
                continue
            self._local.attempts = getattr(self._local, "attempts", 0) + 1 if attempt else 1
            try:
                resp = self._transport(req)
                result = decode_response(resp.status, resp.headers, resp.body, now=self._clock())
                if gate.strikes:
                    self.gate.clear_strikes(key)
                return result, resp.headers
            except errors.RateLimited as exc:
                wait = blocked_wait(exc.retry_after, gate.strikes, reset_in=exc.reset_in)
                self.gate.block(key, self._clock() + wait, gate.strikes + 1)
                if wait > self.max_wait_s:
                    raise errors.RateLimited(exc.status, wait, exc.message,
                                             reset_in=exc.reset_in) from exc
                self._wait_or_raise(wait, started, exc, attempt)
            except errors.Retryable as exc:
                wait = backoff(attempt, base_s=self._backoff[0], cap_s=self._backoff[1],
                               rand=self._rand())
                self._wait_or_raise(wait, started, exc, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the calls we make

    def login(self) -> str:
        """Our own login (``GET /user``)."""
        return str(self.me()["login"])

    def me(self) -> dict[str, Any]:
        """``GET /user``: our login and numeric id (refused to App installation tokens)."""
        return dict(self.request("GET", "/user"))

    def list_labels(self, repo: str, *, max_pages: int = 20) -> list[dict[str, Any]]:
        """The repository's labels (``GET /repos/{o}/{r}/labels``), every page."""
        return self._pages(f"{repo_path(repo)}/labels", repo, max_pages)

    def create_label(self, repo: str, name: str, *, color: str, description: str) -> None:
        """Create a repository label; one that exists already (422) is fine."""
        body = {"name": name, "color": color, "description": description}
        try:
            self.request("POST", f"{repo_path(repo)}/labels", json_body=body, repo=repo)
        except errors.Invalid as exc:
            if exc.status != 422:
                raise

    def get_issue(self, repo: str, number: int) -> dict[str, Any]:
        return dict(self.request("GET", f"{repo_path(repo)}/issues/{int(number)}", repo=repo))

    def list_comments(self, repo: str, number: int, *, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every comment on the issue, oldest first, following ``Link: rel="next"``."""
        return self._pages(f"{repo_path(repo)}/issues/{int(number)}/comments", repo, max_pages)

    def _pages(self, first: str, repo: str, max_pages: int) -> list[dict[str, Any]]:
        """Every item of a paginated list, following ``Link: rel="next"``."""
        out: list[dict[str, Any]] = []
        url: str | None = first
        params: Mapping[str, str | int] | None = {"per_page": 100}
        for _ in range(max_pages):
            if url is None:
                break
            page, headers = self._call("GET", url, params=params, repo=repo)
            out.extend(page or [])
            url, params = next_link(headers), None
        return out

    def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        path = f"{repo_path(repo)}/issues/{int(number)}/comments"
        return dict(self.request("POST", path, json_body={"body": body}, repo=repo))

    def edit_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}"
        return dict(self.request("PATCH", path, json_body={"body": body}, repo=repo))

    def delete_comment(self, repo: str, comment_id: int) -> None:
        """Delete a comment; one already gone is fine."""
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}"
        with contextlib.suppress(errors.NotFound):
            self.request("DELETE", path, repo=repo)

    def add_reaction(self, repo: str, number: int, content: str) -> None:
        path = f"{repo_path(repo)}/issues/{int(number)}/reactions"
        self.request("POST", path, json_body={"content": content}, repo=repo)

    def add_comment_reaction(self, repo: str, comment_id: int, content: str) -> None:
        path = f"{repo_path(repo)}/issues/comments/{int(comment_id)}/reactions"
        self.request("POST", path, json_body={"content": content}, repo=repo)

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        path = f"{repo_path(repo)}/issues/{int(number)}/labels"
        self.request("POST", path, json_body={"labels": list(labels)}, repo=repo)

    def remove_label(self, repo: str, number: int, label: str) -> None:
        """Remove one label; a label that is not there is fine."""
        path = f"{repo_path(repo)}/issues/{int(number)}/labels/{quote(label, safe='')}"
        with contextlib.suppress(errors.NotFound):
            self.request("DELETE", path, repo=repo)

    def get_file(self, repo: str, path: str) -> str | None:
        """A text file on the default branch (the contents API), or None when there is none."""
        try:
            doc = self.request("GET", f"{repo_path(repo)}/contents/{quote(path, safe='/')}", repo=repo)
        except errors.NotFound:
            return None
        if not isinstance(doc, dict) or doc.get("type") != "file":
            return None  # a directory or a submodule is not a config file
        return base64.b64decode(str(doc.get("content") or "")).decode("utf-8", "replace")

    def permission(self, repo: str, user: str) -> Permission:
        """The user's permission on ``repo``; someone GitHub does not know gets ``none``."""
        path = f"{repo_path(repo)}/collaborators/{quote(user, safe='')}/permission"
        try:
            doc = self.request("GET", path, repo=repo)
        except errors.NotFound:
            return Permission("none", "none")
        perm = str(doc.get("permission") or "none")
        return Permission(perm, str(doc.get("role_name") or perm))
