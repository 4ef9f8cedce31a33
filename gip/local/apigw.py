"""Playing API Gateway: ``POST /webhook`` → a REST API (v1) proxy event → the webhook function,
and its answer back into HTTP. ``GET /healthz`` answers 503 until the stack is ready, then 200
with a small JSON of the pool and the queues.

The event has the v1 proxy shape (``resource``, ``path``, ``httpMethod``, ``headers``,
``multiValueHeaders``, ``queryStringParameters``, ``requestContext``, ``body``,
``isBase64Encoded``): a UTF-8 body is passed as text, anything else base64-encoded, as API
Gateway does. https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gip.cli.render import clip
from gip.domain.envelope import iso, utcnow
from gip.errors import GipError

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
Invoke = Callable[[dict[str, Any]], Mapping[str, Any]]


def proxy_event(*, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                body: bytes, source_ip: str, stage: str = "prod", resource: str = "/webhook",
                account: str = "123456789012", api_id: str = "local") -> dict[str, Any]:
    """Pure: an HTTP request → the REST API proxy event."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    pairs = parse_qsl(query, keep_blank_values=True)
    mq: dict[str, list[str]] = {}
    for k, v in pairs:
        mq.setdefault(k, []).append(v)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": single or None, "multiValueHeaders": multi or None,
        "queryStringParameters": dict(pairs) or None, "multiValueQueryStringParameters": mq or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "path": f"/{stage}{path}",
            "stage": stage, "accountId": account, "apiId": api_id, "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()), "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent", "")},
        },
        "body": text if body else None, "isBase64Encoded": encoded,
    }


def http_answer(response: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Pure: the function's proxy answer → (status, headers, body). A malformed answer is a 502,
    as API Gateway gives."""
    try:
        status = int(response["statusCode"])
    except (KeyError, TypeError, ValueError):
        return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
    headers = [(str(k), str(v)) for k, v in (response.get("headers") or {}).items()]
    for k, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(str(k), str(v)) for v in values]
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
    return status, headers, body


def body_length(content_length: str | None, transfer_encoding: str | None) -> tuple[int, tuple[int, dict[str, str]] | None]:
    """Pure: the body's length, or the error answer. Only a plain decimal ``Content-Length`` up
    to API Gateway's limit is read; anything else is refused and the connection closed."""
    if transfer_encoding and transfer_encoding.strip().lower() != "identity":
        return 0, (411, {"message": "Length Required: chunked bodies are not accepted, send Content-Length"})
    text = (content_length or "0").strip()
    if not text.isdigit() or not text.isascii():
        return 0, (400, {"message": f"Bad Request: Content-Length must be a non-negative integer, got {text[:20]!r}"})
    length = int(text)
    if length > MAX_BODY:
        return 0, (413, {"message": "Request Too Long"})
    return length, None


class Gateway:
    """The HTTP server. Binding happens in the constructor, so a busy port fails at once."""

    def __init__(self, host: str, port: int, *, invoke: Invoke, health: Callable[[], tuple[bool, dict[str, Any]]],
                 stats: Callable[[], dict[str, Any]] | None = None,
                 on_request: Callable[[str], None] | None = None, report: Callable[[], str] | None = None) -> None:
        self.invoke, self.health, self.stats, self.on_request = invoke, health, stats, on_request
        self.report = report  # GET /report: the event log as a page (gip.report), drawn per request
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else a response's body waits ~20 ms for the client's delayed ACK

            def do_POST(self) -> None:
                gateway._post(self)

            def do_GET(self) -> None:
                gateway._get(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that hung up (e.g. a health probe's timeout) is not our error.
                import sys

                error = sys.exc_info()[1]
                if not isinstance(error, (BrokenPipeError, ConnectionResetError)):
                    gateway._note(f"request from {client_address[0]} failed: {type(error).__name__}: {error}")

        try:
            self.server = Server((host, port), Handler)
        except OSError as exc:
            raise GipError(f"port {port} on {host} is already in use "
                           f"(choose another with --port): {exc.strerror}") from exc
        self.port = int(self.server.server_address[1])
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="api-gateway", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(timeout=5)
        self.server.server_close()

    # ------------------------------------------------------------------ routes
    def _post(self, req: BaseHTTPRequestHandler) -> None:
        url = urlsplit(req.path)
        if url.path != "/webhook":
            req.close_connection = True  # its body is not read
            return self._send(req, 404, {"message": "Not Found"})
        length, problem = body_length(req.headers.get("Content-Length"), req.headers.get("Transfer-Encoding"))
        if problem is not None:
            req.close_connection = True  # the unread body must never be parsed as the next request
            return self._send(req, *problem)
        body = req.rfile.read(length) if length else b""
        event = proxy_event(method="POST", path=url.path, query=url.query,
                            headers=list(req.headers.items()), body=body,
                            source_ip=req.client_address[0])
        try:
            status, headers, payload = http_answer(self.invoke(event))
        except Exception as exc:  # the function crashed: API Gateway answers 502
            status, headers, payload = 502, [("Content-Type", "application/json")], \
                b'{"message": "Internal server error"}'
            self._note(f"webhook function failed: {type(exc).__name__}: {exc}")
        self._note(f"POST /webhook -> {status} {clip(payload.decode('utf-8', 'replace'), 120)} "
                   f"(delivery {clip(req.headers.get('X-GitHub-Delivery', '-'), 40)})")
        req.send_response(status)
        for name, value in headers:
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        path = urlsplit(req.path).path
        if path == "/healthz":
            try:
                ready, doc = self.health()
            except Exception as exc:
                ready, doc = False, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            return self._send(req, 200 if ready else 503, doc)
        if path == "/stats" and self.stats is not None:
            return self._send(req, 200, self.stats())
        if path == "/report" and self.report is not None:
            return self._send_report(req)
        self._send(req, 404, {"message": "Not Found"})

    def _send(self, req: BaseHTTPRequestHandler, status: int, doc: Any) -> None:
        payload = json.dumps(doc, sort_keys=True).encode("utf-8")
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        if req.close_connection:
            req.send_header("Connection", "close")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _send_report(self, req: BaseHTTPRequestHandler) -> None:
        try:
            status, payload = 200, self.report().encode("utf-8") if self.report else b""
        except Exception as exc:  # not ready, or the log cannot be read: one line, no traceback
            status, payload = 503, f"the report cannot be drawn now: {type(exc).__name__}: {exc}\n".encode()
        req.send_response(status)
        req.send_header("Content-Type", "text/html; charset=utf-8" if status == 200 else "text/plain; charset=utf-8")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _note(self, text: str) -> None:
        if self.on_request is not None:
            self.on_request(f"{iso(utcnow())}  {text}")
