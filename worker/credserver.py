"""A loopback credentials endpoint, so that a long run's child refreshes its member credentials.

Static keys in the child's environment cannot be refreshed: they die with the session (at most
an hour). For a run allowed to last longer, the child gets instead
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (``http://127.0.0.1:<port>/<random>``) and
``AWS_CONTAINER_AUTHORIZATION_TOKEN``: the container-credentials provider every AWS SDK and the
CLI implement, which re-fetches before expiry. What it serves is the member session only
(:class:`worker.credentials.MemberCredentials`, re-assumed near expiry), never the worker's own.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CredentialServer:
    """Serve ``source()`` (AWS_* keys + AWS_CREDENTIAL_EXPIRATION) on 127.0.0.1 while in use."""

    def __init__(self, source: Callable[[], Mapping[str, str]]) -> None:
        self.source = source
        self.token = secrets.token_urlsafe(32)
        self._path = "/" + secrets.token_urlsafe(16)
        self.served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization", "")
                if self.path != outer._path or not hmac.compare_digest(given, outer.token):
                    self.send_error(403)
                    return
                try:
                    creds = outer.source()
                except Exception:  # the SDK retries; the reason is logged by the worker
                    self.send_error(503)
                    return
                outer.served += 1
                body = json.dumps({
                    "AccessKeyId": creds["AWS_ACCESS_KEY_ID"],
                    "SecretAccessKey": creds["AWS_SECRET_ACCESS_KEY"],
                    "Token": creds.get("AWS_SESSION_TOKEN", ""),
                    "Expiration": creds.get("AWS_CREDENTIAL_EXPIRATION", ""),
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # never log requests (tokens in headers)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="credserver")

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._path}"

    def __enter__(self) -> CredentialServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
