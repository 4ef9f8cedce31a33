"""Organizations events: pure classification of real CloudTrail shapes, then the lifecycle
against a moto Organization and the real core (moto in process)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.adapters.organizations import Organization
from gip.domain.envelope import Cause
from gip.domain.org_changes import classify
from gip.services.lifecycle import Lifecycle
from handlers import org_events as oe
from tests.conftest import new_container

EVENTS = Path(__file__).parent / "events"
SAMPLE_MEMBER = "222222222222"
SAMPLE_MANAGEMENT = "111111111111"


def load(name: str, *, account: str = SAMPLE_MEMBER, **replace: str) -> dict[str, Any]:
    text = (EVENTS / name).read_text().replace(SAMPLE_MEMBER, account)
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("org_create_account_result_succeeded.json", "joined", ""),
        ("org_invite_account_to_organization.json", "joined", ""),
        ("org_accept_handshake.json", "joined", ""),
        ("org_move_account.json", "moved", ""),
        ("org_remove_account_from_organization.json", "left", "removed"),
        ("org_leave_organization.json", "left", "removed"),
        ("org_close_account.json", "left", "closed"),
        ("org_close_account_result.json", "left", "closed"),
    ],
)
def test_membership_events_name_the_member_account(name: str, kind: str, reason: str) -> None:
    change = classify(load(name))
    assert (change.kind, change.account_id, change.reason) == (kind, SAMPLE_MEMBER, reason)
    assert change.event_id


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("org_create_account.json", "not a membership event"),  # IN_PROGRESS: wait for the Result
        ("org_create_account_result_failed.json", "account creation FAILED"),
        ("org_remove_account_access_denied.json", "the call failed: AccessDeniedException"),
    ],
)
def test_non_membership_and_failed_calls_are_ignored(name: str, why: str) -> None:
    change = classify(load(name))
    assert change.kind == "ignored" and change.reason == why


def test_sample_detail_types_are_cloudtrails() -> None:
    assert load("org_create_account_result_succeeded.json")["detail-type"] == "AWS Service Event via CloudTrail"
    assert load("org_close_account_result.json")["detail-type"] == "AWS Service Event via CloudTrail"
    assert load("org_move_account.json")["detail-type"] == "AWS API Call via CloudTrail"
    for path in EVENTS.glob("org_*.json"):
        event = json.loads(path.read_text())
        assert event["source"] == "aws.organizations"
        assert event["detail"]["eventSource"] == "organizations.amazonaws.com"


def test_move_keeps_both_parents() -> None:
    change = classify(load("org_move_account.json"))
    assert change.source_parent == "r-examplerootid111"
    assert change.destination_parent == "ou-exampleroot111-exampleouid111"


def test_other_sources_and_shapes_are_ignored() -> None:
    assert classify({"detail": {"eventSource": "iam.amazonaws.com", "eventName": "CreateRole"}}).kind == "ignored"
    assert classify({}).kind == "ignored"
    assert classify({"detail": {"eventSource": "organizations.amazonaws.com",
                                   "eventName": "CloseAccount", "requestParameters": {}}}).reason == \
        "no account id in the event"


def test_invite_by_email_names_no_account() -> None:
    event = load("org_invite_account_to_organization.json")
    event["detail"]["responseElements"]["handshake"]["parties"] = [
        {"id": "o-exampleorgid", "type": "ORGANIZATION"}, {"id": "juan@example.com", "type": "EMAIL"}]
    assert classify(event).kind == "ignored"


def test_account_joined_organization_service_event() -> None:
    event = load("org_create_account_result_succeeded.json")
    event["detail"]["eventName"] = "AccountJoinedOrganization"
    event["detail"]["serviceEventDetails"] = {"accountJoinedOrganizationDetail": {
        "accountId": SAMPLE_MEMBER, "joinedMethod": "INVITED", "joinedTime": "2024-05-02T09:20:00Z"}}
    assert classify(event).kind == "joined" and classify(event).account_id == SAMPLE_MEMBER


# --------------------------------------------------------------------------- moto


class OrgWorld(SimpleNamespace):
    """A moto Organization with one target OU, and the real core."""

    def new_account(self, name: str, *, ou: str | None = None) -> str:
        status = self.orgs.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
        account_id: str = status["AccountId"]
        if ou:
            self.orgs.move_account(AccountId=account_id, SourceParentId=self.root, DestinationParentId=ou)
        return account_id

    def apply(self, name: str, account: str, **replace: str) -> str:
        event = load(name, account=account, **{SAMPLE_MANAGEMENT: self.management, **replace})
        return self.lifecycle.apply(classify(event))


class NoRole(Organization):
    def can_assume(self, account_id: str) -> bool:
        return False


@pytest.fixture
def world(core: SimpleNamespace) -> OrgWorld:
    orgs = boto3.client("organizations", region_name="us-east-1")
    org = orgs.create_organization(FeatureSet="ALL")["Organization"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    target = orgs.create_organizational_unit(ParentId=root, Name="sandboxes")["OrganizationalUnit"]["Id"]
    organization = Organization(orgs, boto3.client("sts", region_name="us-east-1"),
                                   role_name="test-processing", external_id="ext-123")
    lifecycle = Lifecycle(core.pool, core.issues, organization, target_ou_ids=(target,))
    return OrgWorld(orgs=orgs, root=root, target=target, management=org["MasterAccountId"],
                    organization=organization, lifecycle=lifecycle, pool=core.pool, issues=core.issues)


def test_created_account_in_a_target_ou_is_registered(world: OrgWorld) -> None:
    account = world.new_account("alpha", ou=world.target)
    assert world.apply("org_create_account_result_succeeded.json", account) == "registered"
    row = world.pool.get(account)
    assert row is not None and row.status == "AVAILABLE" and row.source == "reconcile"
    assert row.role_arn == f"arn:aws:iam::{account}:role/test-processing"
    assert world.apply("org_accept_handshake.json", account) == "already AVAILABLE"


def test_created_account_whose_role_is_not_there_yet_is_left_to_the_stackset(world: OrgWorld) -> None:
    world.lifecycle.org = NoRole(world.orgs, None, role_name="test-processing")
    account = world.new_account("beta", ou=world.target)
    outcome = world.apply("org_create_account_result_succeeded.json", account)
    assert outcome.startswith("needs attention: processing role")
    assert world.pool.get(account) is None


def test_account_outside_the_target_ous_is_reported_not_registered(world: OrgWorld) -> None:
    account = world.new_account("gamma")  # stays in the root
    assert "outside the target OUs" in world.apply("org_accept_handshake.json", account)
    assert world.pool.get(account) is None


def test_nested_ou_below_a_target_is_in_scope(world: OrgWorld) -> None:
    child = world.orgs.create_organizational_unit(ParentId=world.target, Name="team-a")["OrganizationalUnit"]["Id"]
    account = world.new_account("nested", ou=child)
    assert world.apply("org_create_account_result_succeeded.json", account) == "registered"


def test_move_into_a_target_ou_registers_and_out_of_it_deregisters(world: OrgWorld) -> None:
    account = world.new_account("delta")
    into = {"r-examplerootid111": world.root, "ou-exampleroot111-exampleouid111": world.target}
    world.orgs.move_account(AccountId=account, SourceParentId=world.root, DestinationParentId=world.target)
    assert world.apply("org_move_account.json", account, **into) == "registered"

    world.orgs.move_account(AccountId=account, SourceParentId=world.target, DestinationParentId=world.root)
    out = {"r-examplerootid111": world.target, "ou-exampleroot111-exampleouid111": world.root}
    assert world.apply("org_move_account.json", account, **out) == "deregistered (removed)"
    assert world.pool.get(account).status == "DEREGISTERED"  # type: ignore[union-attr]


def test_move_between_non_target_parents_changes_nothing(world: OrgWorld) -> None:
    other = world.orgs.create_organizational_unit(ParentId=world.root, Name="prod")["OrganizationalUnit"]["Id"]
    account = world.new_account("eps")
    moved = {"r-examplerootid111": world.root, "ou-exampleroot111-exampleouid111": other}
    assert world.apply("org_move_account.json", account, **moved).startswith("moved outside")
    assert world.pool.get(account) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("org_remove_account_from_organization.json", "removed"),
        ("org_close_account.json", "closed"),
        ("org_close_account_result.json", "closed"),
        ("org_leave_organization.json", "removed"),
    ],
)
def test_leaving_events_deregister_without_the_stackset(world: OrgWorld, name: str, reason: str) -> None:
    account = world.new_account("zeta", ou=world.target)
    world.apply("org_create_account_result_succeeded.json", account)
    assert world.apply(name, account) == f"deregistered ({reason})"
    row = world.pool.get(account)
    assert row is not None and row.status == "DEREGISTERED" and row.reason == reason
    assert world.pool.counts().usable == 0
    assert world.apply(name, account) == "not a pool member"  # at-least-once delivery


def test_a_suspended_account_seen_on_a_join_event_is_deregistered(world: OrgWorld) -> None:
    account = world.new_account("eta", ou=world.target)
    world.apply("org_create_account_result_succeeded.json", account)
    world.orgs.close_account(AccountId=account)  # moto: SUSPENDED at once
    assert world.apply("org_accept_handshake.json", account) == "deregistered (suspended)"


def test_the_management_account_is_never_registered(world: OrgWorld) -> None:
    outcome = world.apply("org_accept_handshake.json", world.management)
    assert outcome.startswith("management account")
    assert world.pool.get(world.management) is None


def _leased(world: OrgWorld, account: str) -> tuple[str, Any]:
    """Register, queue an issue, reserve the account and start the run on it."""
    cause = Cause(correlation_id="delivery-1", actor="test")
    world.pool.register(account, role_arn=f"arn:aws:iam::{account}:role/r", source="manual", cause=cause)
    repo, number = "octo/demo", 7
    world.issues.receive(delivery_id="delivery-1", repo=repo, number=number, cause=cause, data={
        "repo": repo, "number": number, "title": "bug", "labels": ["needs-reproduction"],
        "trigger": "labeled", "sender": "maint", "html_url": "https://github.com/octo/demo/issues/7"})
    world.issues.record(repo, number, "IssueQueued", {"run": 1, "sender": "maint", "permission": "write"}, cause=cause)
    lease = world.pool.reserve(issue="issue-octo/demo#7", worker="w1", cause=cause)
    assert lease is not None and lease.account_id == account
    world.issues.record(repo, number, "IssueProcessingStarted",
                        {"run": 1, "account_id": account, "lease_id": lease.lease_id, "worker": "w1"}, cause=cause)
    return repo, lease


def test_a_leased_account_that_closes_fails_its_run_retryable_and_never_returns(world: OrgWorld) -> None:
    account = world.new_account("theta", ou=world.target)
    repo, lease = _leased(world, account)

    assert world.apply("org_close_account.json", account) == "deregistered (closed)"

    row = world.pool.get(account)
    assert row is not None and row.status == "DEREGISTERED" and row.lease_id is None
    issue = world.issues.get(repo, 7)
    assert issue is not None and issue.status == "FAILED" and issue.retryable is True
    [failed] = [e for e in world.issues.store.read("issue-octo/demo#7") if e["type"] == "IssueProcessingFailed"]
    assert failed["data"]["lease_id"] == lease.lease_id and failed["data"]["account_id"] == account
    assert failed["data"]["retryable"] is True and failed["data"]["run"] == 1
    [gone] = [e for e in world.pool.store.read(f"account-{account}") if e["type"] == "AccountDeregistered"]
    assert failed["causation_id"] == gone["event_id"]

    # A closed account never comes back: not through a join event, not through reserve.
    world.orgs.close_account(AccountId=account)
    world.apply("org_create_account_result_succeeded.json", account)
    assert world.pool.get(account).status == "DEREGISTERED"  # type: ignore[union-attr]
    assert world.pool.reserve(issue="issue-octo/demo#8", worker="w2", cause=Cause("d2", "test")) is None


def test_a_deregistered_account_moved_back_into_a_target_ou_rejoins(world: OrgWorld) -> None:
    account = world.new_account("kappa", ou=world.target)
    assert world.apply("org_create_account_result_succeeded.json", account) == "registered"
    world.orgs.move_account(AccountId=account, SourceParentId=world.target, DestinationParentId=world.root)
    assert world.apply("org_move_account.json", account, **{"r-examplerootid111": world.target, "ou-exampleroot111-exampleouid111": world.root}) \
        == "deregistered (removed)"
    world.orgs.move_account(AccountId=account, SourceParentId=world.root, DestinationParentId=world.target)
    assert world.apply("org_move_account.json", account, **{"r-examplerootid111": world.root, "ou-exampleroot111-exampleouid111": world.target}) \
        == "registered"
    assert [e["type"] for e in world.pool.store.read(f"account-{account}")] == \
        ["AccountRegistered", "AccountDeregistered", "AccountRegistered"]


def test_batch_reports_only_the_failing_record(world: OrgWorld) -> None:
    account = world.new_account("iota", ou=world.target)
    good = json.dumps(load("org_create_account_result_succeeded.json", account=account,
                           **{SAMPLE_MANAGEMENT: world.management}))
    bad_move = load("org_move_account.json", account=account)  # parents that do not exist
    bad_move["detail"]["requestParameters"]["destinationParentId"] = "ou-nope-nope"
    event = {"Records": [{"messageId": "m-good", "body": good},
                         {"messageId": "m-bad", "body": json.dumps(bad_move)},
                         {"messageId": "m-garbage", "body": "{not json"}]}
    result = oe.process_batch(world.lifecycle, event)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert world.pool.get(account) is not None


def test_lambda_entry_builds_from_the_environment(world: OrgWorld, core: SimpleNamespace,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    new_container(monkeypatch, oe)
    monkeypatch.setenv("GIP_PREFIX", core.settings.prefix)
    monkeypatch.setenv("PROCESSING_ROLE_NAME", "test-processing")
    monkeypatch.setenv("TARGET_OU_IDS", world.target)
    inside, outside = world.new_account("in", ou=world.target), world.new_account("out")
    records = [{"messageId": a, "body": json.dumps(load("org_create_account_result_succeeded.json", account=a,
                                                        **{SAMPLE_MANAGEMENT: world.management}))}
               for a in (inside, outside)]
    assert oe.handler({"Records": records}, None) == {"batchItemFailures": []}
    assert world.pool.get(inside) is not None and world.pool.get(outside) is None


def test_deregister_retries_a_lost_race_with_a_reserve() -> None:
    from gip.errors import ConcurrencyConflict

    class RacyPool:
        calls = 0

        def deregister(self, account_id: str, *, reason: str, cause: Cause) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise ConcurrencyConflict(f"account-{account_id}", 3)
            return {"event_id": "e1", "correlation_id": "c", "data": {"reason": reason, "lease_id": None, "issue": None}}

    pool = RacyPool()
    lifecycle = Lifecycle(pool, None, None)
    event = lifecycle.deregister_account(SAMPLE_MEMBER, reason="closed", cause=Cause("c", "test"))
    assert event is not None and pool.calls == 2


def test_the_assume_check_holds_no_member_rights() -> None:
    """The lifecycle Lambdas only test that the role can be assumed: the session is deny-all."""
    import json as _json


    calls: list[dict] = []

    class RecordingSts:
        def assume_role(self, **kwargs: object) -> dict:
            calls.append(kwargs)
            return {"Credentials": {}}

    org = Organization(orgs=None, sts=RecordingSts(), role_name="gip-processing", external_id="ext-1")
    assert org.can_assume("123456789012") is True
    (call,) = calls
    assert call["ExternalId"] == "ext-1"
    assert call["RoleArn"].endswith(":role/gip-processing")
    policy = _json.loads(call["Policy"])
    assert policy["Statement"] == [{"Effect": "Deny", "Action": "*", "Resource": "*"}]


def test_an_unregistered_accounts_role_is_named_in_the_management_accounts_partition() -> None:
    calls: list[dict] = []

    class RecordingSts:
        def assume_role(self, **kwargs: object) -> dict:
            calls.append(kwargs)
            return {"Credentials": {}}

    org = Organization(orgs=None, sts=RecordingSts(), role_name="gip-processing", partition="aws-cn")
    assert org.can_assume("123456789012") is True
    assert calls[0]["RoleArn"] == "arn:aws-cn:iam::123456789012:role/gip-processing"


def test_the_lifecycle_names_unregistered_roles_in_its_regions_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from gip.config import Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = replace(Settings.from_env(), region="cn-north-1", processing_role_name="gip-processing")
    lifecycle = Lifecycle.from_settings(settings, session=boto3.Session(region_name="cn-north-1"))
    assert lifecycle.org is not None
    assert lifecycle.org.role_arn("123456789012") == "arn:aws-cn:iam::123456789012:role/gip-processing"
