"""A webhook's deliveries on GitHub: list them a page at a time, ask for a redelivery.

Three kinds of hook (https://docs.github.com/en/rest/apps/webhooks and
https://docs.github.com/en/rest/repos/webhooks, …/orgs/webhooks):

- ``app``: the GitHub App's hook, ``/app/hook/deliveries``, with the App's JWT;
- ``repos/OWNER/NAME/hooks/ID`` and ``orgs/NAME/hooks/ID``: a repository or organization hook,
  with the personal access token (it needs admin:repo_hook / admin:org_hook).

Listing follows the ``cursor`` of ``Link: rel="next"``; each page is one request, counted in
:attr:`HookApi.calls`. Redelivery is ``POST …/deliveries/{id}/attempts`` (202).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gip.adapters.github.client import (
    GitHubClient,
    Transport,
    build_request,
    decode_response,
    next_link,
)
from gip.errors import UsageError

HOOK = re.compile(r"(?:repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|orgs/[A-Za-z0-9_.-]+)/hooks/\d+")
PER_PAGE = 100


def check_hook(spec: str) -> str:
    """``repos/OWNER/NAME/hooks/ID`` or ``orgs/NAME/hooks/ID`` (slashes trimmed); UsageError else."""
    hook = spec.strip().strip("/")
    if not HOOK.fullmatch(hook) or ".." in hook:
        raise UsageError(f"not a hook: {spec!r} (use repos/OWNER/NAME/hooks/ID or orgs/NAME/hooks/ID)")
    return hook


@dataclass
class HookApi:
    """One hook's delivery API, with the token that may read it."""

    hook: str  # "app" or a check_hook() spec
    base_url: str
    token: Callable[[], str | None] = field(repr=False)
    transport: Transport
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0
    _client: GitHubClient | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> str:
        return "/app/hook/deliveries" if self.hook == "app" else f"/{self.hook}/deliveries"

    def first_page(self) -> tuple[list[dict[str, Any]], str | None]:
        return self.page(self.path, {"per_page": PER_PAGE})

    def page(self, url: str, params: dict[str, str | int] | None = None
             ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of deliveries (newest first) and the next page's URL, if any."""
        req = build_request("GET", url, base_url=self.base_url, token=self.token(), params=params)
        self.calls += 1
        resp = self.transport(req)
        doc = decode_response(resp.status, resp.headers, resp.body, now=self.clock())
        return [d for d in (doc or []) if isinstance(d, dict)], next_link(resp.headers)

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to send the delivery again (writes spaced 1 s apart, GitHub's advice)."""
        if self._client is None:
            self._client = GitHubClient(base_url=self.base_url, token=self.token, transport=self.transport,
                                        clock=self.clock, sleep=self.sleep, max_attempts=2)
        self.calls += 1
        self._client.request("POST", f"{self.path}/{int(delivery_id)}/attempts")
