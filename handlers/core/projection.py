"""Rebuild and verify the projections from the log, with the same reducers as the live path.

``fold_log(events)`` groups events by stream and applies them in version order (the time
index orders across streams by ``occurred_at``; within a stream the version is the truth).
``diff_*`` are pure and return :class:`Drift` records; :class:`Projections` is the thin I/O
shell used by ``replay --verify`` / ``--repair`` and the race tests.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.core import issue as issue_mod
from handlers.core import pool as pool_mod
from handlers.core.envelope import Envelope, parse_iso, utcnow
from handlers.core.issue import Issue
from handlers.core.pool import Account, Counts
from handlers.core.pool_service import COUNTS_PK, Pool, account_from_row, row_from_account
from handlers.core.store import DynamoEventStore


@dataclass(frozen=True)
class Drift:
    """One difference between the log's fold and a stored row."""

    kind: str  # account | issue | counts
    key: str
    field: str
    stored: Any
    expected: Any

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.field}: stored={self.stored!r} log={self.expected!r}"


@dataclass
class Folded:
    accounts: dict[str, Account]
    issues: dict[str, Issue]

    @property
    def counts(self) -> Counts:
        return pool_mod.count(self.accounts.values())


def fold_log(events: Iterable[Envelope]) -> Folded:
    """Fold every stream of ``events`` in version order (pure)."""
    streams: dict[str, list[Envelope]] = defaultdict(list)
    for event in events:
        streams[event["stream"]].append(event)
    accounts: dict[str, Account] = {}
    issues: dict[str, Issue] = {}
    for stream, evs in streams.items():
        evs.sort(key=lambda e: e["version"])
        if stream.startswith("account-"):
            accounts = pool_mod.fold(evs, accounts)
        elif stream.startswith("issue-"):
            issues = issue_mod.fold(evs, issues)
    return Folded(accounts, issues)


def _diff_dicts(kind: str, expected: dict[str, dict[str, Any]], stored: dict[str, dict[str, Any]],
                ignore: frozenset[str] = frozenset()) -> list[Drift]:
    out: list[Drift] = []
    for key in sorted(set(expected) | set(stored)):
        exp, got = expected.get(key), stored.get(key)
        if exp is None or got is None:
            out.append(Drift(kind, key, "(row)", "present" if got else "missing",
                             "present" if exp else "missing"))
            continue
        for field in sorted((set(exp) | set(got)) - ignore):
            if exp.get(field) != got.get(field):
                out.append(Drift(kind, key, field, got.get(field), exp.get(field)))
    return out


def diff_accounts(expected: dict[str, Account], stored: dict[str, Account]) -> list[Drift]:
    return _diff_dicts("account", {k: v.as_dict() for k, v in expected.items()},
                       {k: v.as_dict() for k, v in stored.items()})


def diff_issues(expected: dict[str, Issue], stored: dict[str, Issue]) -> list[Drift]:
    return _diff_dicts("issue", {k: v.as_dict() for k, v in expected.items()},
                       {k: v.as_dict() for k, v in stored.items()})


def diff_counts(expected: Counts, stored: Counts) -> list[Drift]:
    return _diff_dicts("counts", {"counts": expected.as_dict()}, {"counts": stored.as_dict()})


@dataclass
class Projections:
    """Read the whole log through the time index and compare it with the stored rows."""

    store: DynamoEventStore

    @property
    def pool(self) -> Pool:
        return Pool(store=self.store)

    def read_all(self, *, since: datetime | None = None, until: datetime | None = None) -> list[Envelope]:
        """Every event: the time index from the first registration day (or ``since``), plus,
        read by stream, any stream that has a stored row but no event in that window."""
        if since is None:
            first = self.pool.first_day()
            since = parse_iso(f"{first}T00:00:00Z") if first else utcnow()
        events = list(self.store.read_window(since, until or utcnow()))
        seen = {e["stream"] for e in events}
        accounts, issues, _ = self.stored()
        for stream in [f"account-{a}" for a in accounts] + list(issues):
            if stream not in seen:
                events.extend(self.store.read(stream))
        return events

    def stored(self) -> tuple[dict[str, Account], dict[str, Issue], Counts]:
        pool_model, issue_model = self.store.tables.pool, self.store.tables.issues
        accounts = {a.account_id: a for a in (account_from_row(r) for r in
                                              pool_model.scan(pool_model.pk.startswith("account-")))}
        issues = {r.pk: Issue.from_dict(json.loads(r.state)) for r in issue_model.scan()}
        return accounts, issues, self.pool.counts()

    def verify(self, events: list[Envelope] | None = None) -> list[Drift]:
        """Fold the log and diff it against every stored row and the counts row."""
        folded = fold_log(self.read_all() if events is None else events)
        accounts, issues, counts = self.stored()
        return (diff_accounts(folded.accounts, accounts) + diff_issues(folded.issues, issues)
                + diff_counts(folded.counts, counts))

    def repair(self, events: list[Envelope] | None = None) -> int:
        """Rewrite every drifted row from the log. Returns the number of rows written."""
        folded = fold_log(self.read_all() if events is None else events)
        accounts, issues, counts = self.stored()
        written = 0
        pool_model, issue_model = self.store.tables.pool, self.store.tables.issues
        for key in {d.key for d in diff_accounts(folded.accounts, accounts)}:
            if key in folded.accounts:
                row_from_account(pool_model, folded.accounts[key], rand=random.random()).save()
            else:
                pool_model(f"account-{key}").delete()
            written += 1
        for key in {d.key for d in diff_issues(folded.issues, issues)}:
            if key in folded.issues:
                st = folded.issues[key]
                issue_model(key, version=st.version, status=st.status, run=st.run,
                            state=json.dumps(st.as_dict(), sort_keys=True)).save()
            else:
                issue_model(key).delete()
            written += 1
        if diff_counts(folded.counts, counts):
            c = folded.counts
            first = self.pool.first_day()
            pool_model(COUNTS_PK, usable=c.usable, registered=c.registered,
                       quarantined=c.quarantined, deregistered=c.deregistered, first_day=first).save()
            written += 1
        return written
