"""Count every AWS call the embedded endpoint serves, by service and operation (bench/e2e.py).

A WSGI middleware around the moto app (``EmbeddedAws(wrap=...)``), so calls from every
process are counted: the in-process functions, the pollers and the worker subprocesses.
Service: the SigV4 credential scope in ``Authorization``. Operation: ``X-Amz-Target`` (JSON
protocols), ``Action=`` (query protocols), else the REST method and path shape (S3).
Polls that come back empty (``ReceiveMessage`` without messages, ``GetRecords`` without
records) are counted apart: they measure idle time, not work.
"""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

Environ = dict[str, Any]
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
EMPTY_POLLS = {("sqs", "ReceiveMessage"): (b'"Messages"', b"<Message>"),
               ("dynamodb", "GetRecords"): (b'"eventID"',)}  # streams sign as "dynamodb"


def service_of(environ: Environ) -> str:
    m = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        return m[1]
    return "moto-api" if environ.get("PATH_INFO", "").startswith("/moto-api") else "unsigned"


def s3_operation(method: str, path: str, query: str) -> str:
    """Pure: the S3 REST call's name (path-style addressing, as boto3 uses for an IP endpoint)."""
    parts = [p for p in path.split("/") if p]
    sub = sorted(k for k in parse_qs(query, keep_blank_values=True) if k not in ("prefix", "max-keys", "list-type", "delimiter", "continuation-token", "x-id", "encoding-type"))
    if not parts:
        return "ListBuckets"
    scope = "Object" if len(parts) > 1 else "Bucket"
    verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}.get(method, method)
    if scope == "Bucket" and not sub:
        return {"GET": "ListObjects", "PUT": "CreateBucket", "DELETE": "DeleteBucket",
                "HEAD": "HeadBucket"}.get(method, f"{verb}Bucket")
    return f"{verb}{scope}" + ("".join(f"?{s}" for s in sub) if sub else "")


def operation_of(environ: Environ, service: str, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    query = environ.get("QUERY_STRING", "")
    for source in (query, body.decode("utf-8", "replace") if body else ""):
        action = parse_qs(source).get("Action")
        if action:
            return action[0]
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    if service == "s3":
        return s3_operation(method, path, query)
    shape = re.sub(r"/[0-9a-f-]{20,}|/arn:[^/]+|/[^/]*%3A[^/]*", "/{id}", path)
    return f"{method} {shape}"


class CountingApp:
    """WSGI middleware: counts (service, operation) and empty polls; thread-safe."""

    def __init__(self, app: Callable[[Environ, Callable[..., Any]], Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.empty: Counter[tuple[str, str]] = Counter()

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = b""
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        service = service_of(environ)
        key = (service, operation_of(environ, service, body))
        result = list(self.app(environ, start_response))
        markers = EMPTY_POLLS.get(key)
        with self.lock:
            if markers is not None and not any(m in chunk for chunk in result for m in markers):
                self.empty[key] += 1
            else:
                self.calls[key] += 1
        return result

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": {f"{s}:{o}": n for (s, o), n in sorted(self.calls.items())},
                    "empty_polls": {f"{s}:{o}": n for (s, o), n in sorted(self.empty.items())}}
