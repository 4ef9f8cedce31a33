"""A local, threaded HTTP server that plays the parts of the GitHub REST API we use.

Usage (or take the ``github_server`` fixture from ``tests/fakes/fixtures.py``)::

    gh = FakeGitHub(token="test-token", login="gip-bot").start()   # free port on 127.0.0.1
    gh.add_issue("octo/repo", 7, labels=["needs-reproduction"])
    gh.set_permission("octo/repo", "alice", "write")
    os.environ["GITHUB_API_URL"] = gh.url        # or gh.url + "/api/v3": GHES paths work too
    ...
    gh.comments("octo/repo", 7)    # -> [{"id", "body", "user": {"login"}, ...}, ...]
    gh.labels("octo/repo", 7)      # -> ["needs-reproduction", "reproduced"]
    gh.reactions("octo/repo", 7)   # -> ["eyes"]   (comment_reactions(repo, comment_id) too)
    gh.requests                    # every request, in order: Recorded(method, path, query, headers, json)
    gh.fail_next(500, n=3)         # the next 3 requests answer 500
    gh.fail_next(403, headers={"Retry-After": "2"}, method="POST")
    gh.wait_until(lambda g: len(g.comments("octo/repo", 7)) == 1, timeout=10)   # e2e: other threads
    gh.stop()

Routes (all under an optional ``/api/v3`` prefix):

    GET    /user
    GET    /repos/{o}/{r}/issues/{n}
    GET    /repos/{o}/{r}/issues/{n}/comments        ?per_page=&page=  (Link: rel="next")
    POST   /repos/{o}/{r}/issues/{n}/comments        {"body"}          -> 201
    GET    /repos/{o}/{r}/issues/comments/{id}
    PATCH  /repos/{o}/{r}/issues/comments/{id}       {"body"}
    DELETE /repos/{o}/{r}/issues/comments/{id}                         -> 204
    POST   /repos/{o}/{r}/issues/{n}/reactions       {"content"}       -> 201 (200 if already there)
    POST   /repos/{o}/{r}/issues/comments/{id}/reactions {"content"}  -> 201 (200 if already there)
    POST   /repos/{o}/{r}/issues/{n}/labels          {"labels": [...]}
    DELETE /repos/{o}/{r}/issues/{n}/labels/{name}                     -> 404 if absent
    GET    /repos/{o}/{r}/collaborators/{user}/permission

    GET    /repos/{o}/{r}/labels                     ?per_page=
    POST   /repos/{o}/{r}/labels                     {"name","color","description"} -> 201 / 422

Unknown issues answer 404, as GitHub does: add them first (``add_issue``, or
``add_issue_from_payload`` with a webhook payload). A user with no permission set gets
``read``, like anyone on a public repository. With ``token`` set, a request without
``Authorization: Bearer <token>`` (or ``token <token>``) answers 401.

Stricter where real GitHub is (issue 19):

- ``limit(until, kind="primary"|"secondary", retry_after=True)``: every request until ``until``
  (epoch s, wall clock) answers 403 (primary: ``x-ratelimit-remaining: 0`` and the reset;
  secondary: ``Retry-After`` or none); ``blocked_requests`` counts the ones sent after the first;
- ``expire_token()``: the token answers 401 (then ``token = "new"`` to rotate);
- ``uncover(repo)``: 403 for a repository the token does not cover;
- ``stranger(user)``: the permission API answers 404 for a login GitHub does not know;
- ``transfer_issue(repo, n, to_repo, to_n)``: 301 to the new place for every issue route;
- repository labels compare without case (``add_repo_label``, ``repo_labels``), and adding an
  unknown label creates a grey one implicitly, as GitHub does;
- ``installation_token = True``: ``GET /user`` is refused (403) as for App installation tokens;
- comments are editable and deletable only by their author (403 otherwise); our comments carry
  ``user.id`` (``user_id``) and, with ``app_id``, ``performed_via_github_app.id``;
- ``set_file(repo, path, text)``: a file on the default branch, served by ``GET
  /repos/{o}/{r}/contents/{path}`` (base64, as GitHub does); any other path is 404 (issue 17).

Checked against GitHub's OpenAPI description (tests/fakes/github_openapi.py): every request is
checked before it is routed; one GitHub would refuse is answered as GitHub answers it (404 for
an unknown route, wrong method or a non-integer issue number, 400 for a body that is not JSON,
422 ``Validation Failed`` for a body or declared query parameter that breaks the schema) and
recorded in ``gh.violations``. ``stop()`` (so the fixture's teardown, and ``with FakeGitHub()``)
then fails with the list, unless the test set ``gh.allow_violations = True`` because it sends
invalid requests on purpose. ``start()`` fails at once if the description was not fetched.

Extending (an App fake, tests/fakes/github_app.py): override :meth:`FakeGitHub.authorize`
(return None to let a request through, or an answer) and :meth:`FakeGitHub.route` (call
``super().route`` for the routes here).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes import github_openapi

_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read",
           "read": "read", "none": "none"}


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (``json`` is the decoded body, or None)."""

    method: str
    path: str  # without the /api/v3 prefix and the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any = None
    raw_path: str = ""  # as sent: with the /api/v3 prefix of a GHES base URL, if any
    at: float = 0.0  # arrival, epoch seconds (spacing between writes across containers)

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class _Failure:
    status: int
    remaining: int
    headers: dict[str, str]
    body: dict[str, Any]
    method: str | None
    path_contains: str | None
    applied: bool = False

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path))


@dataclass
class _Issue:
    repo: str
    number: int
    title: str
    state: str
    labels: list[str]
    user: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[dict[str, Any]] = field(default_factory=list)


class FakeGitHub:
    """The fake GitHub. Thread-safe; every public method may be called while serving."""

    def __init__(self, *, token: str | None = "test-token", login: str = "gip-bot",
                 host: str = "127.0.0.1", user_id: int = 9001, app_id: int | None = None) -> None:
        self.token = token
        self.login = login
        self.user_id = user_id
        self.app_id = app_id
        self.installation_token = False
        self._host = host
        self._repo_labels: dict[str, dict[str, dict[str, str]]] = {}
        self._uncovered: set[str] = set()
        self._strangers: set[str] = set()
        self._moved: dict[tuple[str, int], tuple[str, int]] = {}
        self._limit: tuple[float, str, bool] | None = None
        self.blocked_requests = 0
        self._limit_hit = False
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._issues: dict[tuple[str, int], _Issue] = {}
        self._permissions: dict[tuple[str, str], str] = {}
        self._files: dict[tuple[str, str], str] = {}
        self._comment_reactions: dict[int, list[dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1001)
        self._requests: list[Recorded] = []
        self.violations: list[github_openapi.Violation] = []
        self.allow_violations = False  # True: a test that sends invalid requests on purpose
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeGitHub:
        github_openapi.description()  # loaded once per process; fails loudly if not fetched
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((self._host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="fake-github")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; fail if a request broke GitHub's description (see ``allow_violations``)."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            with self._lock:
                violations = list(self.violations)
            if violations and not self.allow_violations:
                raise OpenAPIViolations(violations)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to use as ``GITHUB_API_URL`` (no trailing slash)."""
        assert self._server, "start() the server first"
        port = self._server.server_address[1]
        return f"http://{self._host}:{port}"

    # ------------------------------------------------------------ arranging

    def add_issue(self, repo: str, number: int, *, title: str = "A bug", state: str = "open",
                  labels: list[str] | tuple[str, ...] = (), user: str = "reporter") -> None:
        with self._lock:
            self._issues[(repo, number)] = _Issue(repo, number, title, state, list(labels), user)

    def add_issue_from_payload(self, payload: Mapping[str, Any]) -> None:
        """Seed the issue of a webhook payload (``issues`` or ``issue_comment`` event)."""
        issue = payload["issue"]
        self.add_issue(
            payload["repository"]["full_name"], int(issue["number"]), title=issue.get("title", ""),
            state=issue.get("state", "open"), labels=[lb["name"] for lb in issue.get("labels", [])],
            user=issue.get("user", {}).get("login", "reporter"),
        )

    def set_issue_state(self, repo: str, number: int, state: str) -> None:
        with self._lock:
            self._issue(repo, number).state = state

    def set_labels(self, repo: str, number: int, labels: list[str]) -> None:
        with self._lock:
            self._issue(repo, number).labels = list(labels)

    def set_file(self, repo: str, path: str, text: str) -> None:
        """A file on the default branch, served by the contents API."""
        with self._lock:
            self._files[(repo, path)] = text

    def set_permission(self, repo: str, user: str, permission: str) -> None:
        """``permission`` is a role: admin, maintain, write, triage, read or none."""
        with self._lock:
            self._permissions[(repo, user)] = permission

    def add_comment(self, repo: str, number: int, body: str, *, login: str = "someone") -> dict[str, Any]:
        """Seed a comment by ``login`` (default: not us), as if written earlier."""
        with self._lock:
            return self._new_comment(self._issue(repo, number), body, login)

    def fail_next(self, status: int, n: int = 1, headers: Mapping[str, str] | None = None, *,
                  body: Mapping[str, Any] | None = None, method: str | None = None,
                  path_contains: str | None = None, applied: bool = False) -> None:
        """Answer the next ``n`` matching requests with ``status`` (and ``headers``).

        With ``applied=True`` the request takes effect first and only the answer is lost (a
        502 after GitHub created the comment). Failed requests are recorded too. Several
        calls queue up in order.
        """
        message = {403: "API rate limit exceeded", 429: "You have exceeded a secondary rate limit"}
        with self._lock:
            self._failures.append(_Failure(
                status, n, dict(headers or {}),
                dict(body or {"message": message.get(status, f"fake failure {status}")}),
                method.upper() if method else None, path_contains, applied,
            ))

    def limit(self, until: float, *, kind: str = "primary", retry_after: bool = True) -> None:
        """Answer every request 403 until ``until`` (epoch seconds, wall clock)."""
        with self._lock:
            self._limit, self._limit_hit = (until, kind, retry_after), False

    def expire_token(self) -> None:
        """The current token stops working (401); set ``token`` to accept a new one."""
        with self._lock:
            self.token = f"expired-{self.token}-{next(self._ids)}"

    def uncover(self, repo: str) -> None:
        with self._lock:
            self._uncovered.add(repo)

    def stranger(self, user: str) -> None:
        with self._lock:
            self._strangers.add(user)

    def transfer_issue(self, repo: str, number: int, to_repo: str, to_number: int) -> None:
        with self._lock:
            issue = self._issues.pop((repo, number))
            issue.repo, issue.number = to_repo, to_number
            self._issues[(to_repo, to_number)] = issue
            self._moved[(repo, number)] = (to_repo, to_number)

    def add_repo_label(self, repo: str, name: str, *, color: str = "ededed", description: str = "") -> None:
        with self._lock:
            self._labels_of(repo)[name.casefold()] = {"name": name, "color": color,
                                                      "description": description}

    def repo_labels(self, repo: str) -> dict[str, dict[str, str]]:
        """name -> {"name", "color", "description"} of the repository's labels."""
        with self._lock:
            return {v["name"]: dict(v) for v in self._labels_of(repo).values()}

    # ------------------------------------------------------------ inspecting

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.is_write]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._issue(repo, number).comments]

    def labels(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return list(self._issue(repo, number).labels)

    def reactions(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return [r["content"] for r in self._issue(repo, number).reactions]

    def comment_reactions(self, repo: str, comment_id: int) -> list[str]:
        with self._lock:
            self._comment(repo, comment_id)
            return [r["content"] for r in self._comment_reactions.get(comment_id, [])]

    def wait_until(self, predicate: Callable[[FakeGitHub], bool], *, timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (checked after every request) or ``timeout``.

        For end-to-end tests where handlers run in other threads, e.g.
        ``gh.wait_until(lambda g: "Reproduced" in g.comments(repo, 7)[0]["body"])``.
        """
        with self._changed:
            return self._changed.wait_for(lambda: _safe(predicate, self), timeout=timeout)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------ serving

    def _issue(self, repo: str, number: int) -> _Issue:
        try:
            return self._issues[(repo, number)]
        except KeyError:
            raise LookupError(f"no issue {repo}#{number} in the fake; add_issue() it") from None

    def _labels_of(self, repo: str) -> dict[str, dict[str, str]]:
        return self._repo_labels.setdefault(repo, {})

    def _user(self, login: str) -> dict[str, Any]:
        ours = login == self.login
        uid = self.user_id if ours else 100_000 + zlib.crc32(login.encode()) % 800_000
        return {"login": login, "id": uid, "type": "Bot" if ours else "User"}

    def _new_comment(self, issue: _Issue, body: str, login: str) -> dict[str, Any]:
        cid = next(self._ids)
        comment = {
            "id": cid, "body": body, "user": self._user(login),
            "performed_via_github_app": ({"id": self.app_id, "slug": "gip"}
                                         if login == self.login and self.app_id else None),
            "html_url": f"https://github.com/{issue.repo}/issues/{issue.number}#issuecomment-{cid}",
            "issue_url": f"{self.url if self._server else ''}/repos/{issue.repo}/issues/{issue.number}",
        }
        issue.comments.append(comment)
        return comment

    def _issue_doc(self, issue: _Issue) -> dict[str, Any]:
        return {
            "number": issue.number, "title": issue.title, "state": issue.state,
            "labels": [{"name": n} for n in issue.labels], "user": {"login": issue.user},
            "html_url": f"https://github.com/{issue.repo}/issues/{issue.number}",
            "comments": len(issue.comments),
        }

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.matches(method, path):
                failure.remaining -= 1
                return failure
        self._failures = [f for f in self._failures if f.remaining > 0]
        return None

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], Any]:
        """Route one request: returns ``(status, headers, json document)``."""
        split = urlsplit(raw_path)
        path = split.path.removeprefix("/api/v3")
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        violations = github_openapi.check(method, raw_path, body)
        with self._lock:
            self._requests.append(Recorded(method, path, query, headers, doc, split.path, time.time()))
            if violations:
                self.violations += violations
                self._changed.notify_all()
                return violations[0].status, {}, violations[0].answer()
            failure = self._take_failure(method, path)
            if failure and failure.applied:
                with contextlib.suppress(LookupError):
                    self._route(method, path, query, doc)
            if failure:
                self._changed.notify_all()
                return failure.status, failure.headers, failure.body
            refused = self._limited() or self.authorize(method, path, headers)
            if refused is not None:
                self._changed.notify_all()
                return refused
            try:
                return self.route(method, path, query, doc, headers)
            except LookupError:
                return 404, {}, {"message": "Not Found"}
            finally:
                self._changed.notify_all()

    def _limited(self) -> tuple[int, dict[str, str], Any] | None:
        if self._limit is None or time.time() >= self._limit[0]:
            return None
        until, kind, with_retry_after = self._limit
        if self._limit_hit:
            self.blocked_requests += 1
        self._limit_hit = True
        if kind == "primary":
            return 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(until) + 1)}, {
                "message": "API rate limit exceeded"}
        extra = {"Retry-After": str(max(1, int(until - time.time()) + 1))} if with_retry_after else {}
        return 403, extra, {"message": "You have exceeded a secondary rate limit"}

    def authorize(self, method: str, path: str, headers: Mapping[str, str]
                  ) -> tuple[int, dict[str, str], Any] | None:
        """None if the request may go on, else the answer (401 bad token, 403 not covered)."""
        if self.token is not None and headers.get("authorization") not in (
                f"Bearer {self.token}", f"token {self.token}"):
            return 401, {}, {"message": "Bad credentials"}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/.*", path)
        if m and m[1] in self._uncovered:
            return 403, {}, {"message": "Resource not accessible by personal access token"}
        if path == "/user" and self.installation_token:
            return 403, {}, {"message": "Resource not accessible by integration"}
        return None

    def route(self, method: str, path: str, query: dict[str, str], doc: Any,
              headers: Mapping[str, str]) -> tuple[int, dict[str, str], Any]:
        """Answer one authorized request; raise LookupError for a 404."""
        return self._route(method, path, query, doc)

    def _route(self, method: str, path: str, query: dict[str, str], doc: Any
               ) -> tuple[int, dict[str, str], Any]:
        if method == "GET" and path == "/user":
            return 200, {}, {"login": self.login, "id": self.user_id, "type": "Bot"}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(.+)", path)
        if not m:
            raise LookupError(path)
        repo, rest = m[1], m[2]
        if rest == "labels":
            return self._repo_label_route(repo, method, doc)
        if rest.startswith("contents/") and method == "GET":
            return self._contents(repo, unquote(rest.removeprefix("contents/")))
        if (mm := re.fullmatch(r"issues/(\d+)(/.*)?", rest)) and (repo, int(mm[1])) in self._moved:
            to_repo, to_number = self._moved[(repo, int(mm[1]))]
            return 301, {"Location": f"{self.url}/repos/{to_repo}/issues/{to_number}{mm[2] or ''}"}, {
                "message": "Moved Permanently"}
        if mm := re.fullmatch(r"collaborators/([^/]+)/permission", rest):
            if method != "GET":
                raise LookupError(path)
            user = unquote(mm[1])
            if user in self._strangers:
                raise LookupError(user)
            role = self._permissions.get((repo, user), "read")
            return 200, {}, {"permission": _LEGACY.get(role, "read"), "role_name": role,
                             "user": {"login": user}}
        if mm := re.fullmatch(r"issues/comments/(\d+)/reactions", rest):
            self._comment(repo, int(mm[1]))
            if method != "POST":
                raise LookupError(path)
            return self._react(self._comment_reactions.setdefault(int(mm[1]), []), (doc or {})["content"])
        if mm := re.fullmatch(r"issues/comments/(\d+)", rest):
            comment = self._comment(repo, int(mm[1]))
            if method in ("PATCH", "DELETE") and comment["user"]["login"] != self.login:
                return 403, {}, {"message": "Must have admin rights to Repository."}
            if method == "DELETE":
                for i in self._issues.values():
                    if comment in i.comments:
                        i.comments.remove(comment)
                return 204, {}, None
            if method == "PATCH":
                comment["body"] = (doc or {})["body"]
            elif method != "GET":
                raise LookupError(path)
            return 200, {}, dict(comment)
        mm = re.fullmatch(r"issues/(\d+)(/.*)?", rest)
        if not mm:
            raise LookupError(path)
        issue, sub = self._issue(repo, int(mm[1])), mm[2] or ""
        if sub == "" and method == "GET":
            return 200, {}, self._issue_doc(issue)
        if sub == "/comments" and method == "GET":
            return self._page(issue, query)
        if sub == "/comments" and method == "POST":
            return 201, {}, dict(self._new_comment(issue, (doc or {})["body"], self.login))
        if sub == "/reactions" and method == "POST":
            return self._react(issue.reactions, (doc or {})["content"])
        if sub == "/labels" and method == "POST":
            for name in (doc or {}).get("labels", []):
                known = self._labels_of(repo).setdefault(  # implicit: a grey label
                    name.casefold(), {"name": name, "color": "ededed", "description": ""})
                if known["name"].casefold() not in {n.casefold() for n in issue.labels}:
                    issue.labels.append(known["name"])
            return 200, {}, [{"name": n} for n in issue.labels]
        if sub.startswith("/labels/") and method == "DELETE":
            name = unquote(sub.removeprefix("/labels/")).casefold()
            present = [n for n in issue.labels if n.casefold() == name]
            if not present:
                return 404, {}, {"message": "Label does not exist"}
            issue.labels.remove(present[0])
            return 200, {}, [{"name": n} for n in issue.labels]
        raise LookupError(path)

    def _contents(self, repo: str, path: str) -> tuple[int, dict[str, str], Any]:
        text = self._files[(repo, path)]  # KeyError is a LookupError: 404
        raw = text.encode("utf-8")
        return 200, {}, {"type": "file", "encoding": "base64", "size": len(raw),
                         "name": path.rsplit("/", 1)[-1], "path": path,
                         "sha": hashlib.sha1(raw).hexdigest(),
                         "content": base64.encodebytes(raw).decode("ascii")}

    def _repo_label_route(self, repo: str, method: str, doc: Any) -> tuple[int, dict[str, str], Any]:
        labels = self._labels_of(repo)
        if method == "GET":
            return 200, {}, [dict(v) for v in labels.values()]
        if method != "POST" or not isinstance(doc, dict) or not doc.get("name"):
            return 422, {}, {"message": "Validation Failed"}
        if str(doc["name"]).casefold() in labels:
            return 422, {}, {"message": "Validation Failed",
                             "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}]}
        label = {"name": str(doc["name"]), "color": str(doc.get("color", "ededed")),
                 "description": str(doc.get("description", ""))}
        labels[label["name"].casefold()] = label
        return 201, {}, dict(label)

    def _comment(self, repo: str, cid: int) -> dict[str, Any]:
        for issue in self._issues.values():
            for c in issue.comments:
                if issue.repo == repo and c["id"] == cid:
                    return c
        raise LookupError(f"comment {cid}")

    def _react(self, reactions: list[dict[str, Any]], content: str) -> tuple[int, dict[str, str], Any]:
        for r in reactions:
            if r["content"] == content and r["user"]["login"] == self.login:
                return 200, {}, r
        reaction = {"id": next(self._ids), "content": content, "user": {"login": self.login}}
        reactions.append(reaction)
        return 201, {}, reaction

    def _page(self, issue: _Issue, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page = min(100, int(query.get("per_page", 30)))
        page = int(query.get("page", 1))
        items = issue.comments[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(issue.comments):
            nxt = f"{self.url}/repos/{issue.repo}/issues/{issue.number}/comments?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return 200, headers, [dict(c) for c in items]


class OpenAPIViolations(AssertionError):
    """Requests GitHub would have refused (each against its OpenAPI description)."""

    def __init__(self, violations: list[github_openapi.Violation]) -> None:
        super().__init__(f"{len(violations)} request(s) to the fake GitHub break GitHub's OpenAPI "
                         "description (set allow_violations = True if on purpose):\n"
                         + "\n".join(f"  {v}" for v in violations))
        self.violations = violations


def _safe(predicate: Callable[[FakeGitHub], bool], fake: FakeGitHub) -> bool:
    try:
        return bool(predicate(fake))
    except (LookupError, IndexError):  # not there yet
        return False


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle on, the body waited for the client's
    # delayed ACK of the headers (~20-40 ms a request on Linux)
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, doc = self.fake.handle(self.command, self.path, headers, body)
        payload = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass
