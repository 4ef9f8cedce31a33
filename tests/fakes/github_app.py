"""The fake GitHub, playing a GitHub App (a subclass of :class:`FakeGitHub`).

Usage::

    gh = FakeGitHubApp(app_id=4242, webhook_url=..., webhook_secret="s").start()
    gh.install("octo/repo", 77)                  # the App is installed there (installation 77)
    gh.private_key_pem                           # the App's key: GITHUB_APP_PRIVATE_KEY
    gh.record_delivery("issues", payload, status_code=502)   # a delivery GitHub gave up on
    gh.deliveries()                              # the App hook's deliveries, newest first
    gh.auth_log                                  # (method, path, "jwt" | "installation" | "pat")

What it checks, as GitHub does:

- App routes (``/app…``, ``GET /repos/{o}/{r}/installation``) take only the App's JWT: RS256
  signature against the App's public key, ``iss`` the app id, ``exp`` at most 10 minutes out
  and not past. Anything else answers 401.
- Installation tokens expire after ``token_ttl_s`` (by ``clock``); an expired, revoked or
  unknown token answers 401 ("Bad credentials"); a token of another installation answers 404.
- Repository calls (the :class:`FakeGitHub` routes) take a valid installation token, or the
  personal access token ``pat`` when one is set (App and PAT side by side).
- Hook deliveries: ``GET /app/hook/deliveries`` (JWT) and the repository / organization hooks'
  ``…/hooks/{id}/deliveries`` (PAT), newest first, ``per_page`` and a ``cursor`` in
  ``Link: rel="next"``. ``POST …/deliveries/{id}/attempts`` answers 202 and really re-posts the
  stored payload, signed with ``webhook_secret``, to ``webhook_url``; the answer becomes a new
  delivery (same GUID, ``redelivery: true``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.github_server import FakeGitHub, Recorded

_APP_ROUTE = re.compile(r"/app(/.*)?|/repos/[^/]+/[^/]+/installation")
_HOOK_ROUTE = re.compile(r"/(?P<hook>(?:repos/[^/]+/[^/]+|orgs/[^/]+)/hooks/\d+)/deliveries(?P<rest>/.*)?")
Answer = tuple[int, dict[str, str], Any]


def new_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHubApp(FakeGitHub):
    def __init__(self, *, app_id: int = 4242, pat: str | None = None, login: str = "gip-app[bot]",
                 token_ttl_s: float = 3600.0, clock: Callable[[], float] = time.time,
                 webhook_url: str | None = None, webhook_secret: str = "",
                 private_key_pem: str | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(token=None, login=login, host=host)  # auth is checked here
        self.app_id, self.pat, self.token_ttl_s, self.clock = app_id, pat, token_ttl_s, clock
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.private_key_pem = private_key_pem or new_private_key_pem()
        self.public_key = serialization.load_pem_private_key(
            self.private_key_pem.encode(), password=None).public_key()
        self._installed: dict[str, int] = {}  # repo (casefolded) -> installation id
        self._tokens: dict[str, tuple[int, float]] = {}  # token -> (installation, expires epoch)
        self.minted: list[int] = []  # installation of each token minted, in order
        self.auth_log: list[tuple[str, str, str]] = []
        self._deliveries: dict[str, list[dict[str, Any]]] = {}  # hook -> deliveries, oldest first
        self._payloads: dict[int, tuple[str, bytes]] = {}  # delivery id -> (event, body)
        self._delivery_ids = itertools.count(10_000_001)

    # ------------------------------------------------------------ arranging

    def install(self, repo: str, installation_id: int) -> None:
        with self._lock:
            self._installed[repo.casefold()] = installation_id

    def uninstall(self, repo: str) -> None:
        with self._lock:
            self._installed.pop(repo.casefold(), None)

    def revoke_tokens(self) -> None:
        """Every installation token minted so far stops working (401), as after a rotation."""
        with self._lock:
            self._tokens.clear()

    def record_delivery(self, event: str, payload: Mapping[str, Any], *, hook: str = "app",
                        status_code: int = 202, guid: str | None = None,
                        delivered_at: float | None = None, redelivery: bool = False) -> dict[str, Any]:
        """Record a delivery as GitHub would list it, without sending it (``status_code`` is
        what our endpoint answered: 2xx is "OK", 0 is a timeout)."""
        body = json.dumps(payload).encode()
        with self._lock:
            item = {
                "id": next(self._delivery_ids), "guid": guid or str(uuid.uuid4()),
                "delivered_at": iso(self.clock() if delivered_at is None else delivered_at),
                "redelivery": redelivery, "duration": 0.05, "status_code": status_code,
                "status": "OK" if 200 <= status_code < 300 else (
                    f"Invalid HTTP Response: {status_code}" if status_code else "timed out"),
                "event": event, "action": payload.get("action"),
                "installation_id": (payload.get("installation") or {}).get("id"),
                "repository_id": (payload.get("repository") or {}).get("id"),
                "throttled_at": None,
            }
            self._deliveries.setdefault(hook, []).append(item)
            self._payloads[item["id"]] = (event, body)
            return dict(item)

    def deliver(self, event: str, payload: Mapping[str, Any], *, hook: str = "app",
                guid: str | None = None) -> dict[str, Any]:
        """Send a delivery to ``webhook_url`` now (signed) and record its answer."""
        guid = guid or str(uuid.uuid4())
        status = self._post(event, json.dumps(payload).encode(), guid)
        return self.record_delivery(event, payload, hook=hook, status_code=status, guid=guid)

    # ------------------------------------------------------------ inspecting

    def deliveries(self, hook: str = "app") -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in reversed(self._deliveries.get(hook, []))]

    def attempts(self, guid: str, hook: str = "app") -> list[dict[str, Any]]:
        return [d for d in self.deliveries(hook) if d["guid"] == guid]

    def auth_kinds(self, method: str | None = None) -> list[str]:
        with self._lock:
            return [kind for m, _, kind in self.auth_log if method is None or m == method]

    # ------------------------------------------------------------ serving

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        split = urlsplit(raw_path)
        path = split.path.removeprefix("/api/v3")
        auth = headers.get("authorization", "")
        bearer = auth.split(" ", 1)[1] if " " in auth else ""
        app_route, hook_route = _APP_ROUTE.fullmatch(path), _HOOK_ROUTE.fullmatch(path)
        if not app_route and not hook_route:
            refused = self._repo_auth(method, path, bearer)
            if refused:
                return self._answer(method, path, headers, refused)
            return super().handle(method, raw_path, headers, body)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self._requests.append(Recorded(method, path, query, headers, None))
            failure = self._take_failure(method, path)
            if failure:
                return failure.status, failure.headers, failure.body
            if app_route:
                refused = self._jwt_refusal(bearer)
                kind, hook = "jwt", "app"
            else:
                refused = None if self.pat and bearer == self.pat else (401, {}, {"message": "Bad credentials"})
                kind, hook = "pat", hook_route["hook"]  # type: ignore[index]
            self.auth_log.append((method, path, kind if not refused else "refused"))
            if refused:
                return refused
            if hook_route:
                answer, redo = self._hook(method, hook, hook_route["rest"] or "", query)
            elif path.startswith("/app/hook/deliveries"):
                answer, redo = self._hook(method, "app", path.removeprefix("/app/hook/deliveries"), query)
            else:
                answer, redo = self._app(method, path), None
        if redo is not None:  # outside the lock: our webhook answers, then the attempt is listed
            event, payload, guid, hook = redo
            self.record_delivery(event, json.loads(payload), hook=hook, guid=guid, redelivery=True,
                                 status_code=self._post(event, payload, guid))
        with self._lock:
            self._changed.notify_all()
        return answer

    def _answer(self, method: str, path: str, headers: dict[str, str], answer: Answer) -> Answer:
        with self._lock:
            self._requests.append(Recorded(method, path, {}, headers, None))
            self._changed.notify_all()
        return answer

    def _repo_auth(self, method: str, path: str, bearer: str) -> Answer | None:
        """None if ``bearer`` may call ``path``; else the refusal."""
        with self._lock:
            if self.pat and bearer == self.pat:
                self.auth_log.append((method, path, "pat"))
                return None
            held = self._tokens.get(bearer)
            if held is None or self.clock() >= held[1]:
                self.auth_log.append((method, path, "refused"))
                return 401, {}, {"message": "Bad credentials"}
            m = re.fullmatch(r"/repos/([^/]+/[^/]+)/.*", path)
            if m and self._installed.get(m[1].casefold()) != held[0]:
                self.auth_log.append((method, path, "refused"))
                return 404, {}, {"message": "Not Found"}
            self.auth_log.append((method, path, "installation"))
            return None

    def _jwt_refusal(self, bearer: str) -> Answer | None:
        try:
            claims = jwt.decode(bearer, self.public_key, algorithms=["RS256"],  # type: ignore[arg-type]
                                options={"require": ["iat", "exp", "iss"], "verify_iat": False,
                                         "verify_exp": False})  # checked below, on self.clock
        except jwt.PyJWTError:
            return 401, {}, {"message": "A JSON web token could not be decoded"}
        now = self.clock()
        if str(claims["iss"]) != str(self.app_id):
            return 401, {}, {"message": "Integration not found"}
        if claims["exp"] <= now:
            return 401, {}, {"message": "'Expiration time' claim ('exp') must be a numeric value "
                                        "representing the future time at which the assertion expires"}
        if claims["exp"] > now + 600 + 5:
            return 401, {}, {"message": "'Expiration time' claim ('exp') is too far in the future"}
        if claims["iat"] > now + 5:
            return 401, {}, {"message": "'Issued at' claim ('iat') must be an Integer representing a time in the past"}
        return None

    def _app(self, method: str, path: str) -> Answer:
        if method == "GET" and path == "/app":
            return 200, {}, {"id": self.app_id, "slug": self.login.removesuffix("[bot]"),
                             "name": "gip app", "owner": {"login": "octo"}}
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/installation", path):
            installation = self._installed.get(m[1].casefold())
            if installation is None or method != "GET":
                return 404, {}, {"message": "Not Found"}
            return 200, {}, {"id": installation, "app_id": self.app_id, "account": {"login": m[1].split("/")[0]}}
        if m := re.fullmatch(r"/app/installations/(\d+)/access_tokens", path):
            installation = int(m[1])
            if method != "POST" or installation not in self._installed.values():
                return 404, {}, {"message": "Not Found"}
            token, expires = "ghs_" + secrets.token_hex(18), self.clock() + self.token_ttl_s
            self._tokens[token] = (installation, expires)
            self.minted.append(installation)
            return 201, {}, {"token": token, "expires_at": iso(expires),
                             "permissions": {"issues": "write", "metadata": "read"}}
        return 404, {}, {"message": "Not Found"}

    def _hook(self, method: str, hook: str, rest: str, query: dict[str, str]
              ) -> tuple[Answer, tuple[str, bytes, str, str] | None]:
        items = list(reversed(self._deliveries.get(hook, [])))
        if method == "GET" and rest == "":
            per_page = min(100, int(query.get("per_page", 30)))
            after = int(query.get("cursor", "v1_0").removeprefix("v1_") or 0)
            page = [d for d in items if not after or d["id"] < after][:per_page]
            headers = {}
            if page and any(d["id"] < page[-1]["id"] for d in items):
                base = "/app/hook" if hook == "app" else f"/{hook}"
                nxt = f"{self.url}{base}/deliveries?per_page={per_page}&cursor=v1_{page[-1]['id']}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            return (200, headers, [dict(d) for d in page]), None
        m = re.fullmatch(r"/(\d+)(/attempts)?", rest)
        found = [d for d in items if m and d["id"] == int(m[1])]
        if not m or not found:
            return (404, {}, {"message": "Not Found"}), None
        if method == "GET" and not m[2]:
            event, body = self._payloads[found[0]["id"]]
            return (200, {}, {**found[0], "request": {"payload": json.loads(body)}}), None
        if method == "POST" and m[2]:
            event, body = self._payloads[found[0]["id"]]
            return (202, {}, {}), (event, body, found[0]["guid"], hook)
        return (404, {}, {"message": "Not Found"}), None

    def _post(self, event: str, body: bytes, guid: str) -> int:
        """POST a delivery to the webhook, signed as GitHub signs; the answer's status (0: none)."""
        if not self.webhook_url:
            return 0
        signature = "sha256=" + hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/fake",
                   "X-GitHub-Event": event, "X-GitHub-Delivery": guid, "X-Hub-Signature-256": signature}
        try:
            return requests.post(self.webhook_url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            return 0
