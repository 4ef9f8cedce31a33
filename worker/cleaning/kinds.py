"""A resource kind the built-in cleaner knows: how to find it and how to delete it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.cleaning.job import CleanupJob

Finder = Callable[[Any, CleanupJob], list[str]]
Deleter = Callable[[Any, list[str], CleanupJob], None]


@dataclass(frozen=True)
class Kind:
    """``find(client, job)`` lists what is there and not ours; ``delete(client, ids, job)``
    removes those (and waits where a later kind depends on it being gone)."""

    name: str  # "ec2:instance": also the prefix of what removed/residue lists show
    service: str  # the boto3 service
    find: Finder
    delete: Deleter
    regional: bool = True

    def label(self, ident: str, region: str) -> str:
        return f"{self.name}/{ident}@{region}" if self.regional else f"{self.name}/{ident}"


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    """Every item under ``key`` across the pages of ``operation``."""
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]


def listed(operation: str, key: str, field: str, *, keep: Callable[[dict[str, Any]], bool] | None = None,
           **kwargs: Any) -> Finder:
    """A finder for the table of kinds: ``field`` of every item under ``key`` across the pages
    of ``operation(**kwargs)`` that ``keep`` accepts (all when it is None)."""

    def find(client: Any, _: CleanupJob) -> list[str]:
        return [item[field] for item in pages(client, operation, key, **kwargs) if keep is None or keep(item)]

    return find


def each(operation: str, param: str) -> Deleter:
    """A deleter for the table of kinds: ``operation(<param>=ident)`` for every ident, in order."""

    def delete(client: Any, idents: list[str], _: CleanupJob) -> None:
        for ident in idents:
            getattr(client, operation)(**{param: ident})

    return delete


def wait(client: Any, waiter: str, job: CleanupJob, **kwargs: Any) -> None:
    """A botocore waiter bounded by the job's wait budget (delay 5 s)."""
    attempts = max(1, int(job.wait_s // 5))
    client.get_waiter(waiter).wait(WaiterConfig={"Delay": 5, "MaxAttempts": attempts}, **kwargs)
