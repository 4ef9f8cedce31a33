"""Rebuild and verify the projections from the log, with the same reducers as the live path.

``fold_log(events)`` groups events by stream and applies them in version order (the time
index orders across streams by ``occurred_at``; within a stream the version is the truth).
``diff_*`` are pure and return :class:`Drift` records; :class:`Projections` is the thin I/O
shell used by ``replay --verify`` / ``--repair`` and the race tests.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from datetime import datetime
from typing import Literal

from gip.domain import issue as issue_mod
from gip.domain import pool as pool_mod
from gip.domain.envelope import Envelope, account_stream, parse_iso, utcnow
from gip.domain.issue import Issue
from gip.domain.pool import Account, Counts
from gip.services.pool import Pool
from gip.store.protocols import AccountPut, CountsRow, IssuePut, Store


@dataclass(frozen=True)
class Drift:
    """One difference between the log's fold and a stored row."""

    kind: str  # account | issue | counts
    key: str
    field: str
    stored: object
    expected: object

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


def _diff_dicts(kind: str, expected: Mapping[str, Mapping[str, object]], stored: Mapping[str, Mapping[str, object]],
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

    store: Store

    @property
    def pool(self) -> Pool:
        return Pool(store=self.store)

    def read_all(self, *, since: datetime | None = None, until: datetime | None = None) -> list[Envelope]:
        """Every event: the time index from the first registration day (or ``since``), plus,
        read by stream, the start of any stream with a stored row that the window does not hold
        from version 1 (no registration yet: the window is empty, or ends within a stream)."""
        if since is None:
            first = self.pool.first_day()
            since = parse_iso(f"{first}T00:00:00Z") if first else utcnow()
        events = list(self.store.read_window(since, until or utcnow()))
        lowest: dict[str, int] = {}
        for event in events:
            lowest[event["stream"]] = min(event["version"], lowest.get(event["stream"], event["version"]))
        accounts, issues, _ = self.stored()
        for stream in [f"account-{a}" for a in accounts] + list(issues):
            if lowest.get(stream, 0) != 1:
                below = lowest.get(stream)
                events.extend(e for e in self.store.read(stream) if below is None or e["version"] < below)
        return events

    def stored(self) -> tuple[dict[str, Account], dict[str, Issue], Counts]:
        accounts = {a.account_id: a for a in self.store.accounts()}
        issues = {i.stream: i for i in self.store.issues()}
        return accounts, issues, self.pool.counts()

    def verify(self, events: list[Envelope] | None = None) -> list[Drift]:
        """Fold the log and diff it against every stored row and the counts row."""
        folded = fold_log(self.read_all() if events is None else events)
        accounts, issues, counts = self.stored()
        return (diff_accounts(folded.accounts, accounts) + diff_issues(folded.issues, issues)
                + diff_counts(folded.counts, counts))

    def repair(self, events: list[Envelope] | None = None) -> Repair:
        """Rewrite every drifted row from its stream, conditioned on the row as read here.

        Rows are read first; each drifted stream is then re-read by key (consistent) and folded,
        and the write is conditioned on the version read (or the counts as read). A row that a
        live command moved in between is refused and listed, never rolled back.
        """
        accounts, issues, counts = self.stored()
        counts_row = self.store.counts_row()
        folded = fold_log(self.read_all() if events is None else events)
        fresh: dict[str, Folded] = {}

        def fold_stream(stream: str) -> Folded:
            if stream not in fresh:
                fresh[stream] = fold_log(self.store.read(stream))
            return fresh[stream]

        result = Repair()
        for key in sorted({d.key for d in diff_accounts(folded.accounts, accounts)}):
            read, want = accounts.get(key), fold_stream(account_stream(key)).accounts.get(key)
            if want is not None and read is not None and want.as_dict() == read.as_dict():
                continue  # the log had moved on, and so had the row: nothing to repair
            result.note(f"account {key}", self._write(
                "account", key, None if want is None else AccountPut(want, random.random(), None), read))
        for key in sorted({d.key for d in diff_issues(folded.issues, issues)}):
            read_issue, want_issue = issues.get(key), fold_stream(key).issues.get(key)
            if want_issue is not None and read_issue is not None and want_issue.as_dict() == read_issue.as_dict():
                continue
            result.note(f"issue {key}", self._write(
                "issue", key, None if want_issue is None else IssuePut(want_issue, None), read_issue))
        if diff_counts(folded.counts, counts):
            streams = sorted({account_stream(k) for k in set(accounts) | set(folded.accounts)})
            want_counts = pool_mod.count(a for s in streams for a in fold_stream(s).accounts.values())
            if want_counts != counts:
                first_day = counts_row.first_day if counts_row else None
                result.note("counts", self.store.put_counts(CountsRow(want_counts, first_day),
                                                            expected=counts_row))
        return result

    def _write(self, kind: Literal["account", "issue"], key: str, row: AccountPut | IssuePut | None,
               read: Account | Issue | None) -> bool:
        """Put ``row`` (or delete the row when None) only if its version is still the one read."""
        if row is None:
            return read is None or self.store.delete_row(kind, key, expected_version=read.version)
        return self.store.put_row(replace(row, expected_version=read.version if read else None))


@dataclass
class Repair:
    """What ``repair`` did: rows rewritten, and rows refused because they moved since read."""

    written: int = 0
    refused: list[str] = dc_field(default_factory=list)

    def note(self, what: str, ok: bool) -> None:
        if ok:
            self.written += 1
        else:
            self.refused.append(what)

