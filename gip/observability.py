"""Logs and metrics: the one way every Lambda, the worker and local mode set them up.

- **Logs**: Powertools' JSON formatter on the *root* logger, so every module keeps its plain
  ``logging.getLogger(__name__)`` and still writes one JSON object per line. Every string in a
  line goes through :mod:`gip.domain.redaction` first (the secret patterns, plus the values of
  secret-looking environment variables and whatever :func:`hide` was given).
- **Keys**: :func:`log_keys` adds ``correlation_id``, ``stream``, ``event_type``, ``account_id``,
  ``lease_id`` (and ``service``) to every line logged while it is open, per thread.
- **Metrics**: :func:`emit` prints :mod:`gip.domain.metrics` points as Embedded Metric Format
  through Powertools Metrics (CloudWatch Logs turns them into metrics; no API call).

Names and fields are listed in docs/internals.md, "Logs and metrics".
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics

from gip.domain import metrics
from gip.domain.redaction import REDACTED, SECRET_ENV_NAME, Redactor, secrets_from_env

KEYS = ("correlation_id", "stream", "event_type", "account_id", "lease_id")
SERVICE_ENV, NAMESPACE_ENV, LEVEL_ENV = "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"
F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- redaction
def _env_secrets(environ: Mapping[str, str]) -> frozenset[str]:
    # WEBHOOK_SECRET_ID & co. name a secret, they are not one (an ARN redacted helps nobody)
    return secrets_from_env({k: v for k, v in environ.items() if not k.endswith(("_ID", "_ARN", "_NAME"))})


_redactor = [Redactor(_env_secrets(os.environ))]


def hide(*values: str) -> None:
    """Redact these exact values from every later log line (a secret read at run time)."""
    _redactor[0] = _redactor[0].with_values(v for v in values if v not in _redactor[0].values)


class JsonFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines (UTC, RFC 3339 time, the logger's name), redacted."""

    def __init__(self, service: str = "") -> None:
        keys: dict[str, Any] = {"name": "%(name)s", **({"service": service} if service else {})}
        super().__init__(utc=True, use_rfc3339=True, **keys)

    def serialize(self, log: Any) -> str:
        # as JSON first: values that are objects (the stack trace's exception) become their text
        plain = json.loads(json.dumps(log, default=self.json_default))
        clean = {k: (REDACTED if k not in KEYS and SECRET_ENV_NAME.search(k) and v else v)
                 for k, v in _redactor[0].data(plain).items()}
        return super().serialize(clean)  # type: ignore[arg-type]


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is now (tests and local mode swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


# --------------------------------------------------------------------------- set-up
_state = {"owner": ""}  # "" (nothing yet), "process" (setup), "host" (local mode)


def setup(service: str | None = None) -> None:
    """JSON lines on stdout for the whole process; once (later calls do nothing).

    Replaces the root logger's handlers (the Lambda runtime's plain one) but keeps pytest's
    capture handlers. Level: ``POWERTOOLS_LOG_LEVEL``, else INFO.
    """
    if _state["owner"]:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    handler = _Stdout(sys.stdout)
    handler.setFormatter(JsonFormatter(service or os.environ.get(SERVICE_ENV, "")))
    root.addHandler(handler)
    level = os.environ.get(LEVEL_ENV, "INFO").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")  # a typo must not stop the function
    _state["owner"] = "process"


def reset() -> None:
    """Undo :func:`setup` (tests: a handler test must not leave JSON lines on the next test's
    stdout). Local mode's :func:`host` handlers are left to their owner."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Stdout):
            root.removeHandler(handler)
    if _state["owner"] == "process":
        _state["owner"] = ""


def host(handler: logging.Handler) -> None:
    """Local mode: add ``handler`` (JSON formatted) to the root logger, which keeps its console
    handler; :func:`setup` then leaves the process's logging alone."""
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    _state["owner"] = "host"


def entry(service: str) -> Callable[[F], F]:
    """Decorate a Lambda handler: logging set up once, ``service`` (and the request id) on
    every line of the invocation."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def invoke(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
            setup(service)
            with log_keys(service=service, function_request_id=getattr(context, "aws_request_id", None)):
                return handler(event, context, *args, **kwargs)

        invoke.service = service  # type: ignore[attr-defined]  # the function's name ends with it (tests)
        return cast(F, invoke)

    return wrap


# --------------------------------------------------------------------------- keys
_FORMATTER = LambdaPowertoolsFormatter()  # its thread-safe keys live in a ContextVar, shared by all


def current_keys() -> dict[str, Any]:
    return dict(_FORMATTER.thread_safe_get_current_keys())


def bind(**keys: object) -> None:
    """Add keys to the lines logged from now on in this thread (None and "" are left out)."""
    _FORMATTER.thread_safe_append_keys(**{k: v for k, v in keys.items() if v not in (None, "")})


@contextmanager
def log_keys(**keys: object) -> Iterator[None]:
    """Keys on every line logged inside the block; what was bound before comes back after."""
    before = current_keys()
    bind(**keys)
    try:
        yield
    finally:
        _FORMATTER.thread_safe_clear_keys()
        _FORMATTER.thread_safe_append_keys(**before)


def event_keys(event: Mapping[str, Any]) -> dict[str, object]:
    """The log keys an event envelope names (its delivery, stream, type, account and lease)."""
    found = event.get("data")
    data: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    stream = str(event.get("stream") or "")
    account = data.get("account_id") or (stream.removeprefix("account-") if stream.startswith("account-") else None)
    return {"correlation_id": event.get("correlation_id"), "stream": stream or None,
            "event_type": event.get("type"), "account_id": account, "lease_id": data.get("lease_id")}


def per_event(handle: Callable[[Any], object]) -> Callable[[Any], object]:
    """``handle(envelope)`` with the envelope's :func:`event_keys` on every line it logs."""

    @functools.wraps(handle)
    def keyed(envelope: Any) -> object:
        with log_keys(**event_keys(envelope)):
            return handle(envelope)

    return keyed


# --------------------------------------------------------------------------- metrics
def namespace() -> str:
    return os.environ.get(NAMESPACE_ENV) or metrics.NAMESPACE


def emit(points: Iterable[metrics.Point], *, prefix: str) -> None:
    """Print the points as EMF: one blob per set of dimensions (EMF's rule), ``Prefix`` on all.
    No service dimension (the alarms name exactly ``Prefix`` + the metric's own)."""
    groups: dict[tuple[tuple[str, str], ...], list[metrics.Point]] = {}
    for p in points:
        groups.setdefault(p.dimensions, []).append(p)
    for dimensions, group in groups.items():
        blob = EphemeralMetrics(namespace=namespace(), service="")
        blob.add_dimension(name=metrics.PREFIX, value=prefix or "unknown")
        for name, value in dimensions:
            blob.add_dimension(name=name, value=value)
        for p in group:
            blob.add_metric(name=p.name, unit=p.metric.unit, value=p.value)
        blob.flush_metrics(raise_on_empty_metrics=True)


def emitter(prefix: str) -> Callable[[Iterable[metrics.Point]], None]:
    """:func:`emit` bound to a deployment's prefix (what services take as ``metrics=``)."""
    return functools.partial(emit, prefix=prefix)


# --------------------------------------------------------------------------- local mode
class FunctionFiles(logging.Handler):
    """Local mode: each record to ``<directory>/<service>.jsonl`` (the function that logged it,
    from the ``service`` key :func:`entry` binds; ``local`` outside any function)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(logging.INFO)
        self.directory = directory
        self._files: dict[str, Any] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.write(str(current_keys().get("service") or "local"), line)
        except Exception:  # a log line must never break the function that logs it
            self.handleError(record)

    def write(self, name: str, line: str) -> None:
        with self._guard:
            handle = self._files.get(name)
            if handle is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = self._files[name] = open(self.directory / f"{name}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            handle.write(line + "\n")
            handle.flush()

    def close(self) -> None:
        with self._guard:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
        super().close()
