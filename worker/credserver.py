"""A loopback credentials endpoint, so that a long run's child refreshes its member credentials.

Static keys in the child's environment cannot be refreshed: they die with the session (at most
an hour). For a run allowed to last longer, the child gets instead
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (``http://127.0.0.1:<port>/<random>``) and
``AWS_CONTAINER_AUTHORIZATION_TOKEN``: the container-credentials provider every AWS SDK and the
CLI implement, which re-fetches before expiry. What it serves is the member session only
(:class:`worker.credentials.MemberCredentials`, re-assumed near expiry), never the worker's own.

The token lives only in the child's environment, which no other uid can read. With per-run uids
the endpoint also checks who is asking: the peer socket's owner (``/proc/net/tcp``) must be the
run's uid, so another run's process is refused even if it somehow holds the token.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def socket_owner(table: str, *, local_port: int, remote_port: int) -> int | None:
    """The uid owning the TCP socket ``local_port → remote_port`` in a ``/proc/net/tcp`` text. PURE."""
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        local, remote = parts[1].rsplit(":", 1)[1], parts[2].rsplit(":", 1)[1]
        if int(local, 16) == local_port and int(remote, 16) == remote_port:
            return int(parts[7])
    return None


def _peer_uid(client_port: int, server_port: int) -> int | None:
    try:
        with open("/proc/net/tcp") as handle:
            return socket_owner(handle.read(), local_port=client_port, remote_port=server_port)
    except OSError:
        return None


class CredentialServer:
    """Serve ``source()`` (AWS_* keys + AWS_CREDENTIAL_EXPIRATION) on 127.0.0.1 while in use."""

    def __init__(self, source: Callable[[], Mapping[str, str]]) -> None:
        self.source = source
        self.token = secrets.token_urlsafe(32)
        self._path = "/" + secrets.token_urlsafe(16)
        self.served = 0
        self._uid: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization", "")
                if (self.path != outer._path or not hmac.compare_digest(given, outer.token)
                        or not outer._peer_ok(self.client_address[1])):
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

    def allow_uid(self, uid: int | None) -> None:
        """Serve only sockets owned by ``uid`` (None: any local peer with the token)."""
        self._uid = uid

    def _peer_ok(self, client_port: int) -> bool:
        return self._uid is None or _peer_uid(client_port, self._server.server_address[1]) == self._uid

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
