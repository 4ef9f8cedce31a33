"""One readable line per stored event, as it happens (the stream poller calls it).

    2026-05-04T04:41:02.118Z  IssueReceived           issue-octo/demo#1      v1  run=1 trigger=labeled sender=alice
    2026-05-04T04:41:03.502Z  AccountReserved         account-318224109183   v2  issue=octo/demo#1 lease=3f2a9c1e…

Times are ISO-8601 UTC with milliseconds, the one format of every console line; a cut value ends
in an ellipsis.

``format_event`` is pure; :class:`Printer` only serialises writes from several threads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from gip.cli.render import clip

# Which data fields are worth a glance, per event type, in this order.
KEYS: dict[str, tuple[str, ...]] = {
    "IssueReceived": ("run", "trigger", "sender"),
    "IssueQueued": ("run", "sender", "permission", "checked_via"),
    "IssueSkipped": ("run", "reason", "sender"),
    "IssueProcessingStarted": ("run", "account_id", "worker"),
    "IssueProcessed": ("run", "verdict", "exit_code", "duration_s"),
    "IssueProcessingFailed": ("run", "error", "retryable", "attempt"),
    "AccountRegistered": ("source",),
    "AccountReserved": ("issue", "lease_id", "worker"),
    "AccountLeaseRenewed": ("lease_id",),
    "AccountReleased": ("issue", "lease_id"),
    "AccountTimedOut": ("issue", "lease_id"),
    "AccountCleaned": ("lease_id", "removed"),
    "AccountCleanupFailed": ("attempt", "error", "residue"),
    "AccountQuarantined": ("reason", "attempts"),
    "AccountReinstated": ("reason", "operator"),
    "AccountDeregistered": ("reason",),
    "WebhookRedeliveryRequested": ("hook", "attempt", "status_code"),
}
SHORT = {"lease_id": "lease"}


def _value(key: str, value: Any) -> str:
    if key == "lease_id" and isinstance(value, str):
        return clip(value, 9)
    if key == "issue" and isinstance(value, str):
        return value.removeprefix("issue-")
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return clip(text, 60)


def format_event(envelope: Mapping[str, Any]) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ  Type  stream  vN  key=value ...`` (``occurred_at``, UTC)."""
    clock = str(envelope.get("occurred_at", ""))
    type_ = str(envelope.get("type", "?"))
    data = envelope.get("data") or {}
    pairs = [f"{SHORT.get(k, k)}={_value(k, data[k])}" for k in KEYS.get(type_, ())
             if data.get(k) not in (None, "", [])]
    if type_ == "IssueProcessed" and data.get("message"):
        pairs.append(f"({_value('message', data['message'])})")
    return f"{clock}  {type_:<24}{envelope.get('stream', ''):<34} v{envelope.get('version', '?'):<3} " \
           + " ".join(pairs)


class Printer:
    """Thread-safe line writer (events, notices, worker warnings share the terminal)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def event(self, envelope: Mapping[str, Any]) -> None:
        self.line(format_event(envelope))


class StdoutRouter:
    """``sys.stdout`` while local mode runs, playing CloudWatch Logs for the functions' prints:
    Embedded Metric Format records (``{"_aws": ...}``: the publisher's and capacity's metrics) go
    to a metrics file, every other line to the terminal (the notifier's "would post" text). Log
    records do not come through here: they go to the terminal (warnings) and to
    ``.local/logs/<function>.jsonl`` (:func:`gip.local.console.configure_logging`)."""

    def __init__(self, terminal: TextIO, metrics_path: Any) -> None:
        self.terminal = terminal
        self.metrics_path = metrics_path
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def install(cls, metrics_path: Any) -> StdoutRouter:
        router = cls(sys.stdout, metrics_path)
        sys.stdout = router  # type: ignore[assignment]
        return router

    def uninstall(self) -> None:
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.terminal

    def write(self, text: str) -> int:
        buffer = getattr(self._local, "buffer", "") + text
        *lines, rest = buffer.split("\n")
        self._local.buffer = rest
        for line in lines:
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        with self._lock:
            if line.startswith('{"_aws"'):
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.metrics_path, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            else:
                self.terminal.write(line + "\n")
                self.terminal.flush()

    def flush(self) -> None:
        rest = getattr(self._local, "buffer", "")
        if rest:
            self._local.buffer = ""
            self._route(rest)
        self.terminal.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()
