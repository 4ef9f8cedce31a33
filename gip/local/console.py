"""What local mode prints around the event lines: the deploy's progress, the banner, logging."""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gip import observability
from gip.domain.envelope import iso
from gip.errors import GipError
from gip.isolation import MARKER

NOT_A_SANDBOX = "local mode runs reproductions as you; it is not a sandbox"


class QuietReporter:
    """The deploy's reporter for local mode: notes and summaries, not every stack event."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def info(self, message: str) -> None:
        if message.strip() and not message.startswith("    "):  # change-set rows: all "Add" here
            self.say(f"  {message}")

    def notice(self, message: str) -> None:
        self.say(f"  note: {message}")

    def event(self, count: int, total: int, event: dict[str, Any]) -> None:
        status = str(event.get("ResourceStatus", ""))
        if status.endswith("FAILED") or count == total:
            self.say(f"  [{count}/{total}] {status} {event.get('ResourceType', '')} "
                     f"{event.get('LogicalResourceId', '')} {event.get('ResourceStatusReason', '')}".rstrip())

    def confirm(self, question: str) -> bool:
        return True  # a fresh embedded endpoint: nothing to replace


def isolation_notice(mode: str) -> str | None:
    """Pure: the start-up line when runs do not get their own uid (docs/processor.md)."""
    return f"notice: {NOT_A_SANDBOX}" if mode == MARKER else None


def banner_lines(*, accounts: int, workers: int, url: str, health: str, secret: str,
                 secret_from_env: bool, github: str, token: bool, endpoint: str, region: str,
                 curl: str) -> list[str]:
    """Pure: the banner printed once the stack is ready."""
    return [
        "",
        f"Ready: {accounts} account(s) AVAILABLE, {workers} worker(s). Ctrl-C stops everything.",
        f"  webhook   {url}    health: {health}",
        f"  report    {url.removesuffix('/webhook')}/report    (the event log as a page, drawn on each request)",
        f"  secret    {secret}  ("
        + ("from GITHUB_WEBHOOK_SECRET" if secret_from_env else "generated; set GITHUB_WEBHOOK_SECRET to choose it") + ")",
        f"  GitHub    {github} " + ("with GITHUB_TOKEN" if token else
                                    "(no GITHUB_TOKEN: comments are printed here, and the payload's "
                                    "author_association stands in for the permission check)"),
        "",
        "Send a signed sample issue (a shell reproduction that fails):",
        "  make demo",
        "or paste:",
        f"  {curl}",
        "",
        "Other commands work against this stack:",
        f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={region}",
        "  .venv/bin/python bootstrap.py accounts | status | replay [--verify] | subscribe NAME --pattern ... --target ARN",
        f"  (or pass --endpoint-url {endpoint})",
        "",
        "Events, as they happen:",
    ]


def ensure_free(host: str, port: int, *, flag: str) -> None:
    """One clear line for a busy port (werkzeug would print two and exit by itself)."""
    if not port:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GipError(f"port {port} on {host} is already in use (choose another with {flag}): "
                           f"{exc.strerror}") from exc


class UtcFormatter(logging.Formatter):
    """``%(asctime)s`` as ISO-8601 UTC with milliseconds, like every other console line."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso(datetime.fromtimestamp(record.created, UTC))


def configure_logging(log_dir: Path) -> None:
    """On the terminal, warnings and errors of the functions, one line each; in
    ``<log_dir>/<function>.jsonl``, every line from INFO up as JSON (docs/local.md, "Logs").
    moto/werkzeug chatter off."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)  # the webhook's INFO line per delivery: the gateway prints its own
    console.setFormatter(UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    observability.host(observability.FunctionFiles(log_dir))  # root level INFO, for the files
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # moto warns for each resource type its CloudFormation skips; local_gaps reports those.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"moto\..*")
