"""Reconcile: the pure two-strike plan, then passes against a moto Organization and the core."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.adapters.organizations import OrgAccount, Organization
from gip.domain.envelope import Cause
from gip.services import reconcile as rc
from gip.services.lifecycle import Lifecycle

A, B, C, MGMT = "100000000001", "100000000002", "100000000003", "999999999999"


def org(*accounts: tuple[str, str], in_scope: bool = True) -> dict[str, OrgAccount]:
    return {a: OrgAccount(a, s, in_scope) for a, s in accounts}


# --------------------------------------------------------------------------- pure plan


def test_a_new_active_account_is_registered_on_the_second_sighting() -> None:
    first = rc.plan_reconcile({}, org((A, "ACTIVE")), {})
    assert first.act == () and first.pending == (rc.Mismatch("register", A),)
    second = rc.plan_reconcile({}, org((A, "ACTIVE")), first.strikes)
    assert second.act == (rc.Mismatch("register", A),)


def test_a_mismatch_not_seen_again_loses_its_strike() -> None:
    first = rc.plan_reconcile({A: "AVAILABLE"}, {}, {})  # a transient empty read
    assert first.pending == (rc.Mismatch("deregister", A, "removed"),)
    healthy = rc.plan_reconcile({A: "AVAILABLE"}, org((A, "ACTIVE")), first.strikes)
    assert healthy.act == () and healthy.strikes == {} and healthy.unchanged == (A,)
    again = rc.plan_reconcile({A: "AVAILABLE"}, {}, healthy.strikes)
    assert again.act == () and again.strikes == {"deregister:100000000001:removed": 1}


@pytest.mark.parametrize(
    ("status", "reason"),
    [("SUSPENDED", "suspended"), ("PENDING_CLOSURE", "closed"), ("CLOSED", "closed")],
)
def test_suspended_and_closed_members_are_deregistered(status: str, reason: str) -> None:
    strikes = {f"deregister:{A}:{reason}": 1}
    plan = rc.plan_reconcile({A: "RESERVED"}, org((A, status)), strikes)
    assert plan.act == (rc.Mismatch("deregister", A, reason),)


def test_an_account_moved_out_of_the_target_ous_is_removed() -> None:
    plan = rc.plan_reconcile({A: "CLEANING"}, org((A, "ACTIVE"), in_scope=False), {f"deregister:{A}:removed": 1})
    assert plan.act == (rc.Mismatch("deregister", A, "removed"),)


def test_a_changed_reason_starts_counting_again() -> None:
    plan = rc.plan_reconcile({A: "AVAILABLE"}, org((A, "PENDING_CLOSURE")), {f"deregister:{A}:suspended": 1})
    assert plan.act == () and plan.strikes == {f"deregister:{A}:closed": 1}


def test_a_deregistered_account_back_in_scope_rejoins_and_suspended_strangers_are_ignored() -> None:
    plan = rc.plan_reconcile({A: "DEREGISTERED"}, org((A, "ACTIVE"), (B, "SUSPENDED")), {f"register:{A}:": 1})
    assert plan.act == (rc.Mismatch("register", A),) and plan.pending == ()
    assert plan.strikes == {f"register:{A}:": 2}


def test_a_deregistered_account_that_is_closed_or_out_of_scope_stays_out() -> None:
    plan = rc.plan_reconcile({A: "DEREGISTERED", B: "DEREGISTERED"}, org((A, "SUSPENDED")), {}, threshold=1)
    assert plan.act == () and plan.unchanged == (A,)


def test_the_management_account_is_never_a_member() -> None:
    plan = rc.plan_reconcile({}, org((MGMT, "ACTIVE"), (A, "ACTIVE")), {}, management_account_id=MGMT, threshold=1)
    assert plan.act == (rc.Mismatch("register", A),)
    plan = rc.plan_reconcile({MGMT: "AVAILABLE"}, org((MGMT, "ACTIVE")), {}, management_account_id=MGMT, threshold=1)
    assert plan.act == (rc.Mismatch("deregister", MGMT, "removed"),)


def test_the_threshold_is_configurable() -> None:
    assert rc.plan_reconcile({}, org((A, "ACTIVE")), {}, threshold=1).act == (rc.Mismatch("register", A),)
    strikes: dict[str, int] = {}
    for _ in range(2):
        plan = rc.plan_reconcile({}, org((A, "ACTIVE")), strikes, threshold=3)
        assert plan.act == ()
        strikes = dict(plan.strikes)
    assert rc.plan_reconcile({}, org((A, "ACTIVE")), strikes, threshold=3).act != ()
    assert rc.threshold_from_env({"RECONCILE_STRIKES": "3"}) == 3
    assert rc.threshold_from_env({}) == 2


def test_pending_accounts_are_not_yet_active_members() -> None:
    plan = rc.plan_reconcile({}, org((A, "PENDING_ACTIVATION")), {})
    assert plan.act == () and plan.pending == () and plan.unchanged == ()


# --------------------------------------------------------------------------- moto


class NoRole(Organization):
    def can_assume(self, account_id: str) -> bool:
        return False


class Flaky(Organization):
    """Drops one account from the next listing only: a transient read."""

    drop: str = ""

    def scope_accounts(self, target_ou_ids: tuple[str, ...]) -> dict[str, OrgAccount]:
        found = super().scope_accounts(target_ou_ids)
        if self.drop:
            found.pop(self.drop, None)
            self.drop = ""
        return found

    def describe(self, account_id: str) -> OrgAccount | None:
        return None if account_id == self.drop else super().describe(account_id)


@pytest.fixture
def world(core: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr(rc, "_CACHE", {})
    orgs = boto3.client("organizations", region_name="us-east-1")
    management = orgs.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    sts = boto3.client("sts", region_name="us-east-1")

    def reconciler(org_cls: type[Organization] = Flaky, targets: tuple[str, ...] = (), threshold: int = 2) -> rc.Reconciler:
        organization = org_cls(orgs, sts, role_name="test-processing")
        lifecycle = Lifecycle(core.pool, core.issues, organization, target_ou_ids=targets)
        return rc.Reconciler(lifecycle, rc.StrikeStore(core.store), threshold=threshold)

    def new_account(name: str, parent: str | None = None) -> str:
        account: str = orgs.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        if parent:
            orgs.move_account(AccountId=account, SourceParentId=root, DestinationParentId=parent)
        return account

    return SimpleNamespace(orgs=orgs, root=root, management=management, core=core, pool=core.pool,
                           reconciler=reconciler, new_account=new_account)


def status(world: SimpleNamespace, account: str) -> str | None:
    row = world.pool.get(account)
    return row.status if row else None


def test_added_account_is_registered_after_two_passes(world: SimpleNamespace) -> None:
    account = world.new_account("alpha")
    first = world.reconciler().run_once()
    assert first.registered == [] and first.pending == [f"register {account}"]
    assert status(world, account) is None

    second = world.reconciler().run_once()  # a fresh instance: the strikes are durable
    assert second.registered == [account] and second.pending == []
    row = world.pool.get(account)
    assert row.status == "AVAILABLE" and row.source == "reconcile"
    assert world.pool.get(world.management) is None

    third = world.reconciler().run_once()
    assert third.to_dict() == {"registered": [], "deregistered": [], "unchanged": 1,
                               "needs_attention": [], "pending": []}


def test_removed_and_suspended_accounts_are_deregistered_after_two_passes(world: SimpleNamespace) -> None:
    gone, suspended, healthy = (world.new_account(n) for n in ("gone", "susp", "ok"))
    for account in (gone, suspended, healthy):
        world.pool.register(account, role_arn=f"arn:aws:iam::{account}:role/r", source="stackset",
                            cause=Cause("t", "test"))
    world.orgs.remove_account_from_organization(AccountId=gone)
    world.orgs.close_account(AccountId=suspended)

    first = world.reconciler().run_once()
    assert first.deregistered == [] and sorted(first.pending) == sorted(
        [f"deregister {gone} removed", f"deregister {suspended} suspended"])
    second = world.reconciler().run_once()
    assert sorted(second.deregistered) == sorted([gone, suspended]) and second.unchanged == 1
    assert world.pool.get(gone).reason == "removed"
    assert world.pool.get(suspended).reason == "suspended"
    assert status(world, healthy) == "AVAILABLE"
    assert world.pool.counts().usable == 1


def test_a_single_transient_read_never_deregisters_a_healthy_account(world: SimpleNamespace) -> None:
    account = world.new_account("steady")
    world.pool.register(account, role_arn=f"arn:aws:iam::{account}:role/r", source="stackset", cause=Cause("t", "test"))
    reconciler = world.reconciler()
    for _ in range(3):  # missing, present, missing, present...: never twice in a row
        reconciler.org.drop = account
        assert reconciler.run_once().pending == [f"deregister {account} removed"]
        assert reconciler.run_once().pending == []
    assert status(world, account) == "AVAILABLE"


def test_an_account_whose_role_cannot_be_assumed_needs_attention(world: SimpleNamespace) -> None:
    account = world.new_account("norole")
    reconciler = world.reconciler(NoRole)
    reconciler.run_once()
    summary = reconciler.run_once()
    assert summary.registered == [] and len(summary.needs_attention) == 1
    assert summary.needs_attention[0].startswith(f"{account}: processing role cannot be assumed")
    assert status(world, account) is None
    assert "needs attention: 1" in summary.render()


def test_target_ous_limit_the_scope(world: SimpleNamespace) -> None:
    target = world.orgs.create_organizational_unit(ParentId=world.root, Name="sandboxes")["OrganizationalUnit"]["Id"]
    child = world.orgs.create_organizational_unit(ParentId=target, Name="team")["OrganizationalUnit"]["Id"]
    inside, nested, outside = world.new_account("in", target), world.new_account("nest", child), world.new_account("out")
    summary = world.reconciler(targets=(target,), threshold=1).run_once()
    assert sorted(summary.registered) == sorted([inside, nested])
    assert status(world, outside) is None

    world.orgs.move_account(AccountId=inside, SourceParentId=target, DestinationParentId=world.root)
    moved = world.reconciler(targets=(target,), threshold=1).run_once()
    assert moved.deregistered == [inside] and world.pool.get(inside).reason == "removed"


def test_an_account_moved_back_into_a_target_ou_rejoins(world: SimpleNamespace) -> None:
    target = world.orgs.create_organizational_unit(ParentId=world.root, Name="sandboxes")["OrganizationalUnit"]["Id"]
    account = world.new_account("back", target)
    assert world.reconciler(targets=(target,), threshold=1).run_once().registered == [account]
    world.orgs.move_account(AccountId=account, SourceParentId=target, DestinationParentId=world.root)
    assert world.reconciler(targets=(target,), threshold=1).run_once().deregistered == [account]

    world.orgs.move_account(AccountId=account, SourceParentId=world.root, DestinationParentId=target)
    assert world.reconciler(targets=(target,), threshold=1).run_once().registered == [account]
    assert status(world, account) == "AVAILABLE"
    assert [e["type"] for e in world.pool.store.read(f"account-{account}")] == \
        ["AccountRegistered", "AccountDeregistered", "AccountRegistered"]


def test_strikes_live_in_the_pool_table_but_not_among_accounts(world: SimpleNamespace) -> None:
    world.new_account("alpha")
    world.reconciler().run_once()
    item = boto3.client("dynamodb").get_item(TableName=world.core.settings.pool_table,
                                             Key={"pk": {"S": "reconcile#strikes"}})["Item"]
    assert item["version"]["N"] == "1" and "register:" in item["strikes"]["S"]
    assert world.pool.accounts() == []


def test_a_concurrent_pass_is_refused_rather_than_double_counted(world: SimpleNamespace) -> None:
    store = rc.StrikeStore(world.core.store)
    store.save({"x": 1}, expected_version=0)
    with pytest.raises(rc.ConcurrencyConflict):
        store.save({"x": 2}, expected_version=0)
    assert store.load() == ({"x": 1}, 1)


def test_reconcile_once_is_the_local_mode_hook(world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIP_PREFIX", world.core.settings.prefix)
    monkeypatch.setenv("PROCESSING_ROLE_NAME", "test-processing")
    monkeypatch.delenv("TARGET_OU_IDS", raising=False)
    account = world.new_account("hooked")
    assert rc.reconcile_once().pending == [f"register {account}"]
    assert rc.reconcile_once().registered == [account]
    assert len(rc._CACHE) == 1  # clients built once
    world.orgs.close_account(AccountId=account)
    rc.reconcile_once()
    assert rc.reconcile_once().deregistered == [account]
    assert world.pool.get(account).reason == "suspended"


def run_cli(*argv: str) -> tuple[int, str, str]:
    """The real ``bootstrap.py`` dispatch, limited to our subcommand (others may be mid-edit)."""
    from gip.cli import main as cli
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMANDS", {"reconcile": cli.COMMANDS["reconcile"]})
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_the_summary(world: SimpleNamespace) -> None:
    account = world.new_account("cli")
    code, out, _ = run_cli("reconcile", "--prefix", world.core.settings.prefix, "--region", "us-east-1",
                           "--strikes", "1", "--format", "json")
    assert code == 0
    assert f'"registered": [\n    "{account}"\n  ]' in out
    code, out, _ = run_cli("reconcile", "--prefix", world.core.settings.prefix, "--region", "us-east-1")
    assert code == 0 and "registered:      0" in out and "unchanged:       1" in out


def test_cli_failure_is_one_line(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "_CACHE", {})
    code, out, err = run_cli("reconcile", "--prefix", core.settings.prefix, "--region", "us-east-1")  # no organization
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_cli_rejects_a_zero_threshold(core: Any) -> None:
    code, _, err = run_cli("reconcile", "--prefix", core.settings.prefix, "--region", "us-east-1", "--strikes", "0")
    assert code == 2 and "--strikes" in err


@pytest.mark.server
def test_local_mode_hook_over_a_moto_server(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``--local`` does: the embedded endpoint over HTTP, passes a few seconds apart."""
    import time

    from tests.conftest import make_core

    monkeypatch.setattr(rc, "_CACHE", {})
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("GIP_PREFIX", "localhook")
    monkeypatch.delenv("TARGET_OU_IDS", raising=False)
    core = make_core(endpoint_url=moto_server, prefix="localhook")
    orgs = boto3.client("organizations", region_name="us-east-1", endpoint_url=moto_server)
    orgs.create_organization(FeatureSet="ALL")
    account = orgs.create_account(AccountName="local", Email="local@example.com")["CreateAccountStatus"]["AccountId"]

    started = time.monotonic()
    rc.reconcile_once()
    assert rc.reconcile_once().registered == [account]
    assert core.pool.get(account).status == "AVAILABLE"
    assert time.monotonic() - started < 10  # two passes well inside the ~10 s budget

    orgs.remove_account_from_organization(AccountId=account)
    rc.reconcile_once()
    assert rc.reconcile_once().deregistered == [account]
    assert core.pool.get(account).reason == "removed"


def test_an_account_registered_meanwhile_by_the_stackset_counts_as_unchanged(world: SimpleNamespace) -> None:
    account = world.new_account("race")
    reconciler = world.reconciler(threshold=1)
    real = reconciler.lifecycle.register_if_assumable

    def stackset_first(account_id: str, *, cause: Cause) -> str:
        world.pool.register(account_id, role_arn=f"arn:aws:iam::{account_id}:role/r", source="stackset", cause=cause)
        return real(account_id, cause=cause)

    reconciler.lifecycle.register_if_assumable = stackset_first
    summary = reconciler.run_once()
    assert summary.registered == [] and summary.unchanged == 1
    assert world.pool.get(account).source == "stackset"
