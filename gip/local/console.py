"""What local mode prints around the event lines: the deploy's progress, the banner, logging."""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable
from typing import Any

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


def configure_logging() -> None:
    """Warnings and errors of the functions, one line each; moto/werkzeug chatter off."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # The webhook logs every delivery at INFO; the gateway prints its own line per request.
    logging.getLogger("gip.services.webhook").setLevel(logging.WARNING)
    # moto warns for each resource type its CloudFormation skips; local_gaps reports those.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"moto\..*")
