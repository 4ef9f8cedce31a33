"""The deploy and destroy progress printer (``gip.cli.stacks.Reporter`` on a terminal)."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ConsoleReporter:
    """Prints progress the way ``cdk deploy`` does: one line per stack event."""

    def __init__(self, out: TextIO | None = None, *, yes: bool = False) -> None:
        self.out = out or sys.stdout
        self.yes = yes

    def info(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def notice(self, message: str) -> None:
        print(f"note: {message}", file=self.out, flush=True)

    def event(self, count: int, total: int, event: dict[str, Any]) -> None:
        reason = event.get("ResourceStatusReason", "")
        width = len(str(total))
        print(f"  [{count:>{width}}/{total}] {event.get('ResourceStatus', ''):<20} "
              f"{event.get('ResourceType', ''):<40} {event.get('LogicalResourceId', '')}"
              f"{'  ' + reason if reason else ''}", file=self.out, flush=True)

    def confirm(self, question: str) -> bool:
        if self.yes:
            return True
        if not sys.stdin.isatty():
            return False
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
