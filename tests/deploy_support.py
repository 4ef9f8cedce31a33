"""Helpers for the deploy tests: a recording reporter, a fake dependency installer, options."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gip.cli.deploy import DeployOptions

ORG = "o-abcdefghij"


@dataclass
class RecordingReporter:
    """Collects what the deploy reports; ``answer`` is what confirm() returns."""

    answer: bool = False
    infos: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.infos.append(message)

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def event(self, count: int, total: int, event: dict[str, Any]) -> None:
        self.events.append((count, total, event))

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


@dataclass
class FakeInstaller:
    """Stands in for pip (no network in tests): writes one tiny package, counts calls."""

    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, reqs: list[str], target: Path) -> None:
        self.calls.append(list(reqs))
        (target / "fakedep").mkdir()
        (target / "fakedep" / "__init__.py").write_text("VERSION = '1'\n")


def options(endpoint: str, **overrides: Any) -> DeployOptions:
    """Local-mode options against a moto server, with instant sleeps."""
    base: dict[str, Any] = {
        "org_id": ORG, "endpoint_url": endpoint, "region": "us-east-1", "local": True,
        "installer": FakeInstaller(), "sleep": lambda _s: None, "poll": 0.0,
    }
    base.update(overrides)
    return DeployOptions(**base)


def copy_source(dest: Path, *, files: tuple[str, ...] = ("setup.cfg",)) -> Path:
    """The shipped trees (gip, handlers, schemas, worker) and ``files`` copied under ``dest``."""
    root = Path(__file__).resolve().parent.parent
    for top in ("gip", "handlers", "schemas", "worker"):
        shutil.copytree(root / top, dest / top, ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        shutil.copy(root / name, dest / name)
    return dest
