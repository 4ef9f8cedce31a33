"""Reconcile the pool with the Organization (hourly, on demand, and every few seconds locally).

Organizations events are best-effort, so this compares the pool rows with ListAccounts
(whole org) or ListAccountsForParent (the ``TARGET_OU_IDS`` and the OUs below them), plus
DescribeAccount for pool members the listing does not show.

Pipeline:

1. read — org accounts in scope, pool rows, stored strikes (no writes);
2. ``plan_reconcile(pool_rows, org_accounts, strikes) -> Plan`` — pure;
3. act — confirmed mismatches only: register (source ``reconcile``) when the processing role
   can be assumed, else report (a DEREGISTERED account back in scope rejoins); deregister
   gone / suspended / closed accounts;
4. store the strikes, return a :class:`Summary`.

Two-strike rule: a mismatch is acted on only when the same mismatch (action, account,
reason) was seen on the previous pass too, so one transient read never deregisters a healthy
account. Strikes live in the pool table under ``pk = "reconcile#strikes"``; a mismatch that is
not seen on a pass loses its strikes. The threshold is ``RECONCILE_STRIKES`` (default 2).
The management account is never a pool member.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gip.adapters.organizations import OrgAccount
from gip.domain.envelope import Cause, iso, utcnow
from gip.domain.org_changes import LIVE_STATES, leave_reason
from gip.errors import AwsError, ConcurrencyConflict
from gip.services.lifecycle import Lifecycle
from gip.store.protocols import ProjectionStore

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.config import Settings

STRIKES_PK = "reconcile#strikes"  # the item's key in the pool table (gip.store.dynamo_rows)
DEFAULT_THRESHOLD = 2


@dataclass(frozen=True)
class Mismatch:
    action: Literal["register", "deregister"]
    account_id: str
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.action}:{self.account_id}:{self.reason}"


@dataclass(frozen=True)
class Plan:
    """The decision for one pass: act on ``act``, wait on ``pending``, store ``strikes``."""

    act: tuple[Mismatch, ...] = ()
    pending: tuple[Mismatch, ...] = ()
    unchanged: tuple[str, ...] = ()
    strikes: Mapping[str, int] = field(default_factory=dict)


def plan_reconcile(
    pool_rows: Mapping[str, str],
    org_accounts: Mapping[str, OrgAccount],
    strikes: Mapping[str, int],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    management_account_id: str = "",
) -> Plan:
    """Compare ``pool_rows`` (account id → pool status) with ``org_accounts`` (in scope, plus
    described out-of-scope pool members with ``in_scope=False``; an absent id is not in the org).

    Pure. A mismatch seen now gets ``strikes[key] + 1``; it is acted on at ``threshold``.
    """
    found: list[Mismatch] = []
    unchanged: list[str] = []
    for account_id in sorted(set(pool_rows) | set(org_accounts)):
        status = pool_rows.get(account_id)
        live = status in LIVE_STATES
        org = org_accounts.get(account_id)
        if account_id == management_account_id:
            if live:
                found.append(Mismatch("deregister", account_id, "removed"))
            continue
        if org is None or not org.in_scope:
            gone = (leave_reason(org.status) if org else None) or "removed"
            if live:
                found.append(Mismatch("deregister", account_id, gone))
            continue
        reason = leave_reason(org.status)
        if reason:
            if live:
                found.append(Mismatch("deregister", account_id, reason))
            elif status:
                unchanged.append(account_id)
        elif org.status == "ACTIVE" and status in (None, "DEREGISTERED"):
            # A deregistered account back in scope rejoins; registering still needs its
            # processing role to be assumable, i.e. the StackSet to have redeployed it.
            found.append(Mismatch("register", account_id))
        elif status is not None:
            unchanged.append(account_id)
    counted = {m.key: int(strikes.get(m.key, 0)) + 1 for m in found}
    act = tuple(m for m in found if counted[m.key] >= max(1, threshold))
    pending = tuple(m for m in found if m not in act)
    return Plan(act=act, pending=pending, unchanged=tuple(unchanged), strikes=counted)


@dataclass
class Summary:
    registered: list[str] = field(default_factory=list)
    deregistered: list[str] = field(default_factory=list)
    unchanged: int = 0
    needs_attention: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "deregistered": self.deregistered,
                "unchanged": self.unchanged, "needs_attention": self.needs_attention,
                "pending": self.pending}

    def render(self) -> str:
        lines = [f"registered:      {len(self.registered)} {' '.join(self.registered)}".rstrip(),
                 f"deregistered:    {len(self.deregistered)} {' '.join(self.deregistered)}".rstrip(),
                 f"unchanged:       {self.unchanged}",
                 f"needs attention: {len(self.needs_attention)}"]
        lines += [f"  {item}" for item in self.needs_attention]
        lines.append(f"pending (first strike): {len(self.pending)}")
        lines += [f"  {item}" for item in self.pending]
        return "\n".join(lines)


class StrikeStore:
    """The strikes, stored beside the pool rows with an optimistic version check."""

    def __init__(self, store: ProjectionStore) -> None:
        self.store = store

    def load(self) -> tuple[dict[str, int], int]:
        return self.store.strikes()

    def save(self, strikes: Mapping[str, int], *, expected_version: int) -> None:
        if not self.store.save_strikes(strikes, expected_version=expected_version, at=iso(utcnow())):
            raise ConcurrencyConflict(STRIKES_PK, expected_version, "another reconcile ran")


class Reconciler:
    """One pass = read, plan, act, store strikes."""

    def __init__(self, lifecycle: Lifecycle, strikes: StrikeStore, *, threshold: int = DEFAULT_THRESHOLD) -> None:
        if lifecycle.org is None:
            raise ValueError("reconcile needs the Organization")
        self.lifecycle = lifecycle
        self.org = lifecycle.org
        self.strikes = strikes
        self.threshold = threshold

    @classmethod
    def from_settings(cls, settings: Settings, *, session: Any = None, threshold: int | None = None,
                      target_ou_ids: tuple[str, ...] | None = None) -> Reconciler:
        import boto3

        sess = session or boto3.Session(region_name=settings.region)
        lifecycle = Lifecycle.from_settings(settings, session=sess)
        if target_ou_ids is not None:
            lifecycle.target_ou_ids = target_ou_ids
        return cls(lifecycle, StrikeStore(lifecycle.pool.store),
                   threshold=threshold if threshold is not None else threshold_from_env())

    def run_once(self) -> Summary:
        try:
            return self._run_once()
        except Exception as exc:
            if exc.__class__.__module__.startswith("botocore"):
                raise AwsError(f"reconcile: {type(exc).__name__}: {exc}") from exc
            raise

    def _run_once(self) -> Summary:
        targets = self.lifecycle.target_ou_ids
        management = self.org.management_account_id()
        org_accounts = self.org.scope_accounts(targets)
        pool_rows = {a.account_id: a.status for a in self.lifecycle.pool.accounts()}
        for account_id, status in pool_rows.items():
            if status in LIVE_STATES and account_id not in org_accounts:
                described = self.org.describe(account_id)
                if described is not None:
                    org_accounts[account_id] = OrgAccount(account_id, described.status, in_scope=False)
        stored, version = self.strikes.load()
        plan = plan_reconcile(pool_rows, org_accounts, stored, threshold=self.threshold,
                              management_account_id=management)
        summary = Summary(unchanged=len(plan.unchanged),
                          pending=[f"{m.action} {m.account_id} {m.reason}".rstrip() for m in plan.pending])
        cause = Cause(correlation_id=f"reconcile-{iso(utcnow())}", actor="reconcile")
        for mismatch in plan.act:
            self._act(mismatch, cause, summary)
        self.strikes.save(plan.strikes, expected_version=version)
        return summary

    def _act(self, mismatch: Mismatch, cause: Cause, summary: Summary) -> None:
        account_id = mismatch.account_id
        if mismatch.action == "deregister":
            self.lifecycle.deregister_account(account_id, reason=mismatch.reason, cause=cause)
            summary.deregistered.append(account_id)
            return
        outcome = self.lifecycle.register_if_assumable(account_id, cause=cause)
        if outcome.startswith("needs attention"):
            summary.needs_attention.append(f"{account_id}: {outcome.removeprefix('needs attention: ')}")
        elif outcome == "registered":
            summary.registered.append(account_id)
        else:
            summary.unchanged += 1  # registered meanwhile by another path (the StackSet)


def threshold_from_env(env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get("RECONCILE_STRIKES", "")
    return int(raw) if raw.strip().isdigit() else DEFAULT_THRESHOLD


_CACHE: dict[tuple[Any, ...], Reconciler] = {}


def reconcile_once(settings: Any = None, *, session: Any = None, threshold: int | None = None,
                   target_ou_ids: tuple[str, ...] | None = None) -> Summary:
    """One reconcile pass; the local-mode hook (call it every few seconds).

    ``settings`` defaults to ``Settings.from_env()``; clients are built once per
    (settings, threshold, targets) and reused by later calls.
    """
    if settings is None:
        from gip.config import Settings

        settings = Settings.from_env()
    key = (settings, threshold, target_ou_ids, id(session))
    if key not in _CACHE:
        _CACHE[key] = Reconciler.from_settings(settings, session=session, threshold=threshold,
                                               target_ou_ids=target_ou_ids)
    return _CACHE[key].run_once()
