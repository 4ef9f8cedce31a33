"""The CloudFormation templates: cfn-lint clean, and they hold what the code relies on.

moto skips some resource types and does not check trust policies, so these properties are
asserted on the templates themselves (docs/internals.md fixes the names).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gip.local.gaps import load_template

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
QUEUES = ["Gatekeeper", "Issue", "Notifier", "Cleanup", "Capacity", "OrgEvents"]
HANDLERS = {
    "handlers.webhook.handler", "handlers.publisher.handler", "handlers.gatekeeper.handler",
    "handlers.notifier.handler", "handlers.sweeper.handler", "handlers.capacity.handler",
    "handlers.org_events.handler", "handlers.registrar.handler", "handlers.reconcile.handler",
    "handlers.redeliver.handler",
}
WORKER_ENV = {
    "EVENTS_TABLE", "POOL_TABLE", "ISSUES_TABLE", "BUS_NAME", "RESULTS_BUCKET", "ISSUE_QUEUE_URL",
    "CLEANUP_QUEUE_URL", "PROCESSING_ROLE_NAME", "EXTERNAL_ID", "GIP_PREFIX",
}


@pytest.fixture(scope="module")
def mgmt() -> dict[str, Any]:
    return load_template((TEMPLATES / "management.yaml").read_text())


@pytest.fixture(scope="module")
def worker() -> dict[str, Any]:
    return load_template((TEMPLATES / "worker.yaml").read_text())


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    return load_template((TEMPLATES / "member-account.yaml").read_text())


def of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def test_cfn_lint_reports_no_errors() -> None:
    files = sorted(str(p) for p in TEMPLATES.glob("*.yaml"))
    proc = subprocess.run([sys.executable, "-m", "cfnlint", *files], capture_output=True, text=True, check=False)
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational.
    assert proc.returncode & 2 == 0, proc.stdout + proc.stderr
    assert len(files) == 3


def test_a_first_dry_run_can_plan_every_template_from_its_text() -> None:
    # Over 51,200 bytes a template goes by S3 URL; a first --dry-run has no bucket to upload
    # to, so its plan lists the template's resources read from the text (stacks.plan).
    from gip.cli.template_source import resources_of

    for path in TEMPLATES.glob("*.yaml"):
        text = path.read_text()
        found = resources_of(text)
        assert [logical_id for logical_id, _ in found] == list(load_template(path.read_text())["Resources"]), path.name
        assert all(kind.startswith(("AWS::", "Custom::")) for _, kind in found), path.name
    assert ("EventsTable", "AWS::DynamoDB::Table") in resources_of((TEMPLATES / "management.yaml").read_text())


def test_events_table_layout_stream_and_retention(mgmt: dict[str, Any]) -> None:
    table = mgmt["Resources"]["EventsTable"]
    props = table["Properties"]
    assert props["TableName"] == {"Fn::Sub": "${Prefix}-events"}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # Protection comes on in the update after the create (tests/test_first_create.py).
    assert props["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectEventsTable", True, False]}
    assert table["DeletionPolicy"] == "RetainExceptOnCreate"
    gsis = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in props["GlobalSecondaryIndexes"]}
    assert gsis == {"by-day": ["day", "ts"], "by-correlation": ["correlation_id", "ts"]}


def test_pool_table_indexes_match_internals(mgmt: dict[str, Any]) -> None:
    props = mgmt["Resources"]["PoolTable"]["Properties"]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {"pk": "S", "status": "S", "rand": "N", "leased": "S", "expires_at": "S", "reserved_at": "S"}
    gsis = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in props["GlobalSecondaryIndexes"]}
    assert gsis == {"by-status": ["status", "rand"], "by-expiry": ["leased", "expires_at"],
                    "by-reserved": ["leased", "reserved_at"]}
    assert mgmt["Resources"]["IssuesTable"]["Properties"]["TableName"] == {"Fn::Sub": "${Prefix}-issues"}


@pytest.mark.parametrize("name", QUEUES)
def test_queue_has_dlq_redrive_sse_and_a_policy_for_its_rule(mgmt: dict[str, Any], name: str) -> None:
    res = mgmt["Resources"]
    queue = res[f"{name}Queue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [f"{name}Dlq", "Arn"]}
    assert res[f"{name}Dlq"]["Properties"]["SqsManagedSseEnabled"] is True
    policy = res[f"{name}QueuePolicy"]["Properties"]
    assert {"Ref": f"{name}Queue"} in policy["Queues"]
    statement = policy["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert "aws:SourceArn" in statement["Condition"]["ArnEquals"]


def test_rules_use_getatt_bus_name_and_target_queues_with_dlq(mgmt: dict[str, Any]) -> None:
    rules = of_type(mgmt, "AWS::Events::Rule")
    on_bus = {k: v["Properties"] for k, v in rules.items() if "EventBusName" in v["Properties"]}
    assert set(on_bus) == {"ReceivedRule", "QueuedRule", "NotifyRule", "CleanupRule", "CapacityRule"}
    for props in on_bus.values():
        assert props["EventBusName"] == {"Fn::GetAtt": ["Bus", "Name"]}  # !Ref crashes moto
        for target in props["Targets"]:
            assert target["Arn"]["Fn::GetAtt"][0].endswith("Queue")
            assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].endswith("Dlq")
    assert on_bus["NotifyRule"]["EventPattern"]["detail-type"] == [
        "IssueQueued", "IssueSkipped", "IssueProcessingStarted", "IssueProcessed", "IssueProcessingFailed"]
    assert on_bus["CleanupRule"]["EventPattern"]["detail-type"] == [
        "AccountReleased", "AccountTimedOut", "AccountReinstated"]


def test_internal_rules_skip_what_replay_to_bus_republishes(mgmt: dict[str, Any]) -> None:
    """A backfill (``replay --to-bus``, ``"replay": true``) reaches user subscriptions only: our
    own consumers saw those events when they happened."""
    import json

    import boto3
    from moto import mock_aws

    rules = of_type(mgmt, "AWS::Events::Rule")
    on_bus = {k: v["Properties"] for k, v in rules.items() if "EventBusName" in v["Properties"]}
    with mock_aws():
        events, sqs = boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        for name, props in on_bus.items():
            pattern = {**props["EventPattern"], "source": ["gip"]}
            assert pattern["detail"] == {"replay": [{"exists": False}]}, name
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
            detail_type = pattern["detail-type"][0]
            events.put_events(Entries=[
                {"Source": "gip", "DetailType": detail_type, "Detail": json.dumps({"n": 1})},
                {"Source": "gip", "DetailType": detail_type, "Detail": json.dumps({"n": 2, "replay": True})},
            ])
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            assert [json.loads(m["Body"])["detail"] for m in got] == [{"n": 1}], name


def test_org_events_rule_matches_every_membership_event_the_handler_classifies(mgmt: dict[str, Any]) -> None:
    from gip.domain import org_changes

    pattern = mgmt["Resources"]["OrgEventsRule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.organizations"]
    assert set(pattern["detail-type"]) == {"AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"}
    names = pattern["detail"]["eventName"]
    handled = {*org_changes.JOIN_EVENTS, *org_changes.LEAVE_EVENTS, "MoveAccount"}
    assert set(names) == handled and len(names) == len(handled)
    assert {"CloseAccountResult", "LeaveOrganization", "AccountJoinedOrganization",
            "AccountDepartedOrganization"} <= set(names)
    # Each name is one classify() acts on (not "not a membership event").
    for name in names:
        event = {"detail": {"eventName": name, "eventSource": org_changes.ORG_SOURCE}}
        assert org_changes.classify(event).reason != "not a membership event", name


def test_lambdas_each_have_their_own_role_and_the_fixed_handlers(mgmt: dict[str, Any]) -> None:
    functions = of_type(mgmt, "AWS::Lambda::Function")
    assert {f["Properties"]["Handler"] for f in functions.values()} == HANDLERS
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(functions)
    for role in of_type(mgmt, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert "*" not in actions and not any(a.endswith(":*") for a in actions)


def _env(template: dict[str, Any], function: str) -> dict[str, Any]:
    return template["Resources"][function]["Properties"]["Environment"]["Variables"]


def test_lifecycle_lambdas_get_the_env_they_read(mgmt: dict[str, Any]) -> None:
    tables = {"EVENTS_TABLE": {"Ref": "EventsTable"}, "POOL_TABLE": {"Ref": "PoolTable"},
              "ISSUES_TABLE": {"Ref": "IssuesTable"}, "PROCESSING_ROLE_NAME": {"Fn::Sub": "${Prefix}-processing"}}
    for function in ("RegistrarFunction", "OrgEventsFunction", "ReconcileFunction"):
        assert tables.items() <= _env(mgmt, function).items(), function
    for function in ("OrgEventsFunction", "ReconcileFunction"):
        env = _env(mgmt, function)
        assert env["EXTERNAL_ID"] == {"Ref": "ExternalId"}  # the member trust requires it
        assert env["TARGET_OU_IDS"] == {"Ref": "TargetOuIds"}
    assert _env(mgmt, "ReconcileFunction")["RECONCILE_STRIKES"] == {"Ref": "ReconcileStrikes"}
    assert mgmt["Parameters"]["ReconcileStrikes"]["Default"] == 2
    assert mgmt["Parameters"]["TargetOuIds"]["Default"] == ""  # empty = the whole organization
    from gip.cli.deploy import DeployOptions, _parameters

    opts = DeployOptions(org_id="o-abcdefghij", ou_ids=["ou-ab12-abcdefgh", "ou-ab12-ijklmnop"],
                         regions=["eu-west-1", "us-east-1"])
    params = _parameters(opts, bucket="b", external_id="x", artifacts={
        "lambda": SimpleNamespace(key="l.zip"), "worker": SimpleNamespace(key="w.zip")})
    assert params["management.yaml"]["TargetOuIds"] == "ou-ab12-abcdefgh,ou-ab12-ijklmnop"
    # The cleaner sweeps exactly the regions the guardrails SCP leaves open.
    assert params["management.yaml"]["AllowedRegions"] == params["worker.yaml"]["AllowedRegions"] == "eu-west-1,us-east-1"


def _role_of(template: dict[str, Any], function: str) -> dict[str, Any]:
    return template["Resources"][template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]]


def _resources_for(role: dict[str, Any], action: str) -> list[Any]:
    found: list[Any] = []
    for statement in _statements(role):
        if statement["Effect"] == "Allow" and action in _actions(statement):
            resource = statement["Resource"]
            found.extend(resource if isinstance(resource, list) else [resource])
    return found


ISSUE_WRITES = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]


@pytest.mark.parametrize("function", ["RegistrarFunction", "OrgEventsFunction", "ReconcileFunction"])
def test_lifecycle_lambdas_can_fail_a_leased_run_and_write_the_pool(mgmt: dict[str, Any], function: str) -> None:
    role = _role_of(mgmt, function)
    for action in ISSUE_WRITES:
        resources = _resources_for(role, action)
        for table in ("EventsTable", "PoolTable", "IssuesTable"):
            assert {"Fn::GetAtt": [table, "Arn"]} in resources, (action, table)


PROCESSING_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${Prefix}-processing"}


def test_org_events_and_reconcile_may_assume_only_the_processing_role_in_the_org(mgmt: dict[str, Any]) -> None:
    for function in ("OrgEventsFunction", "ReconcileFunction"):
        role = _role_of(mgmt, function)
        assume = [s for s in _statements(role) if "sts:AssumeRole" in _actions(s)]
        assert len(assume) == 1 and _actions(assume[0]) == {"sts:AssumeRole"}
        assert assume[0]["Resource"] == PROCESSING_ROLES
        assert assume[0]["Condition"] == {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrgId"}}}
    assert "sts:AssumeRole" not in _allowed(_role_of(mgmt, "RegistrarFunction"))


def test_organizations_rights_are_exactly_the_calls_each_lambda_makes(mgmt: dict[str, Any]) -> None:
    def orgs(function: str) -> set[str]:
        return {a for a in _allowed(_role_of(mgmt, function)) if a.startswith("organizations:")}

    # gip.adapters.organizations.Organization: management_account_id, describe, parent_in_scope/account_in_scope.
    assert orgs("OrgEventsFunction") == {"organizations:DescribeOrganization", "organizations:DescribeAccount",
                                         "organizations:ListParents"}
    # reconcile: management_account_id, scope_accounts (whole org or the OU tree), describe.
    assert orgs("ReconcileFunction") == {
        "organizations:DescribeOrganization", "organizations:ListAccounts", "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent", "organizations:DescribeAccount"}
    assert orgs("RegistrarFunction") == set()  # deregistration touches only the tables


def test_queue_consumers_report_batch_item_failures_and_notifier_is_serial(mgmt: dict[str, Any]) -> None:
    mappings = of_type(mgmt, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 5  # publisher (stream), gatekeeper, notifier, capacity, org-events
    for m in mappings.values():
        assert m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mappings["PublisherMapping"]["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    # Serial by design, not by throttling: a FIFO queue whose every message is in one group
    # (EventBridge sets only a static MessageGroupId), so Lambda runs one batch at a time and two
    # events of an issue are never rendered at once (gip/services/notifier.py finds-or-creates the
    # one status comment: concurrent renders could create two).
    res = mgmt["Resources"]
    source = mappings["NotifierMapping"]["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    queue = res[source]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is True
    redrive_dlq = res[queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
    assert redrive_dlq["FifoQueue"] is True  # SQS: a FIFO queue's DLQ is FIFO
    targets = [t for r in of_type(mgmt, "AWS::Events::Rule").values() for t in r["Properties"]["Targets"]
               if t["Arn"] == {"Fn::GetAtt": [source, "Arn"]}]
    assert targets and all(isinstance(t["SqsParameters"]["MessageGroupId"], str) for t in targets)
    for target in targets:  # EventBridge takes no FIFO queue as a target's DLQ
        rule_dlq = res[target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]]["Properties"]
        assert not rule_dlq.get("FifoQueue")
    # Nothing throttles the mapping: no reserved concurrency below what it may run.
    assert "ReservedConcurrentExecutions" not in res["NotifierFunction"]["Properties"]
    # Every FIFO queue has one group per rule target, i.e. one batch in flight at a time.
    fifo = [k for k, v in of_type(mgmt, "AWS::SQS::Queue").items() if v["Properties"].get("FifoQueue")]
    assert {k for k in fifo if "RedrivePolicy" in res[k]["Properties"]} == {source}


def test_results_bucket_encrypted_private_and_tls_only(mgmt: dict[str, Any]) -> None:
    bucket = mgmt["Resources"]["ResultsBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["LifecycleConfiguration"]["Rules"][0]["Prefix"] == "logs/"
    deny = mgmt["Resources"]["ResultsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_worker_task_env_and_entry_point(worker: dict[str, Any]) -> None:
    container = worker["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert {e["Name"] for e in container["Environment"]} >= WORKER_ENV
    own_image_command = container["Command"]["Fn::If"][2]
    assert own_image_command == ["python", "-m", "worker"]
    assert "python -m worker" in container["Command"]["Fn::If"][1][0]


def test_worker_may_resend_only_to_the_issue_queue(worker: dict[str, Any]) -> None:
    role = worker["Resources"]["WorkerTaskRole"]
    send = [s for s in _statements(role) if "sqs:SendMessage" in _actions(s)]
    assert len(send) == 1 and _actions(send[0]) == {"sqs:SendMessage"} and send[0]["Effect"] == "Allow"
    assert send[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${Prefix}-issues"}


def test_worker_stop_budget_fits_the_ecs_stop_timeout(worker: dict[str, Any]) -> None:
    from worker.config import WorkerConfig

    container = worker["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"] if isinstance(e["Value"], str)}
    assert env["STOP_BUDGET_SECONDS"] == "100" and container["StopTimeout"] == 120
    cfg = WorkerConfig.from_env({**env, "WORKER_NAME": "w"})
    assert cfg.stop_budget_s == 100 < container["StopTimeout"]


def test_the_stock_image_runs_the_worker_as_root_so_each_run_gets_its_own_uid(worker: dict[str, Any]) -> None:
    container = worker["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    # One shared snippet user let runs read each other (issue 11): no RUN_AS_USER anywhere.
    assert "RUN_AS_USER" not in {e["Name"] for e in container["Environment"]}
    assert "User" not in container  # root in the container: worker/sandbox.py hands out per-run uids
    stock, own = container["Command"]["Fn::If"][1][0], container["Command"]["Fn::If"][2]
    assert "RUN_AS_USER" not in stock and stock.rstrip().endswith("PYTHONPATH=/opt/app exec python -m worker")
    # The bundle's deps/ (boto3 included) on the image Python's path through a .pth: snippets
    # (no PYTHONPATH, run under their own uid) can import it; nothing is pip-installed at start.
    assert 'sysconfig.get_paths()["purelib"], "gip-bundle.pth"' in stock and "/opt/app/deps" in stock
    assert "pip install" not in stock
    assert own == ["python", "-m", "worker"]


def test_member_role_trusts_worker_and_lifecycle_lambdas_with_external_id_and_org(member: dict[str, Any]) -> None:
    role = member["Resources"]["ProcessingRole"]["Properties"]
    assert role["ManagedPolicyArns"] == {"Ref": "ManagedPolicyArns"}
    statements = {s["Sid"]: s for s in role["AssumeRolePolicyDocument"]["Statement"]}
    assert set(statements) == {"WorkerAssume", "LifecycleCheckAssume", "WorkerTagSession"}
    conditions = {"sts:ExternalId": {"Ref": "ExternalId"}, "aws:PrincipalOrgID": {"Ref": "OrgId"}}
    worker = statements["WorkerAssume"]
    assert worker["Principal"] == {"AWS": {"Ref": "WorkerTaskRoleArn"}} and worker["Action"] == "sts:AssumeRole"
    assert worker["Condition"]["StringEquals"] == conditions
    # org-events and reconcile check "can the role be assumed" before registering an account.
    lifecycle = statements["LifecycleCheckAssume"]
    assert lifecycle["Principal"] == {"AWS": [{"Ref": "OrgEventsRoleArn"}, {"Ref": "ReconcileRoleArn"}]}
    assert lifecycle["Action"] == "sts:AssumeRole"
    assert lifecycle["Condition"]["StringEquals"] == conditions
    tag = statements["WorkerTagSession"]  # only the worker tags sessions (with the lease id)
    assert tag["Principal"] == {"AWS": {"Ref": "WorkerTaskRoleArn"}} and tag["Action"] == "sts:TagSession"
    assert all(s["Effect"] == "Allow" for s in statements.values())
    registration = member["Resources"]["Registration"]
    assert registration["Properties"]["ServiceToken"] == {"Ref": "RegistrarTopicArn"}


def test_member_lifecycle_principals_come_from_management_outputs(mgmt: dict[str, Any], member: dict[str, Any]) -> None:
    from gip.cli.deploy import DeployOptions, member_parameters

    assert mgmt["Outputs"]["OrgEventsRoleArn"]["Value"] == {"Fn::GetAtt": ["OrgEventsRole", "Arn"]}
    assert mgmt["Outputs"]["ReconcileRoleArn"]["Value"] == {"Fn::GetAtt": ["ReconcileRole", "Arn"]}
    out = {"WorkerTaskRoleArn": "arn:w", "OrgEventsRoleArn": "arn:o", "ReconcileRoleArn": "arn:r",
           "RegistrarTopicArn": "arn:t"}
    params = member_parameters(DeployOptions(org_id="o-abcdefghij"), out, "ext")
    assert params["OrgEventsRoleArn"] == "arn:o" and params["ReconcileRoleArn"] == "arn:r"
    # Every member parameter without a default is supplied by the deploy.
    required = {k for k, v in member["Parameters"].items() if "Default" not in v}
    assert required <= set(params)


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action if isinstance(action, list) else [action])


def _allowed(role: dict[str, Any]) -> set[str]:
    return {a for s in _statements(role) if s["Effect"] == "Allow" for a in _actions(s)}


def test_member_role_can_run_the_built_in_cleaner_but_not_remove_its_own_stack(member: dict[str, Any]) -> None:
    role = member["Resources"]["ProcessingRole"]
    assert _allowed(role) >= {
        "cloudformation:ListStacks", "cloudformation:DescribeStacks", "cloudformation:DeleteStack",
        "s3:ListAllMyBuckets", "s3:GetBucketTagging", "s3:ListBucket", "s3:ListBucketVersions",
        "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket"}
    by_sid = {s["Sid"]: s for s in _statements(role)}
    assert by_sid["DeleteObjects"]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::*/*"}
    assert by_sid["DeleteStacks"]["Resource"]["Fn::Sub"].endswith(":${AWS::AccountId}:stack/*/*")
    deny = by_sid["KeepOwnStackSetInstance"]
    assert deny["Effect"] == "Deny" and "cloudformation:DeleteStack" in _actions(deny)
    assert "StackSet-${Prefix}-member-" in deny["Resource"]["Fn::Sub"]
    # The cleaner's delete rights are the only write rights the inline policy adds.
    writes = {a for a in _allowed(role) if a.split(":")[1].startswith(("Delete", "Put", "Create", "Update"))}
    assert writes == {"cloudformation:DeleteStack", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket"}


def test_outputs_have_the_stable_keys(mgmt: dict[str, Any], worker: dict[str, Any]) -> None:
    keys = set(mgmt["Outputs"]) | set(worker["Outputs"])
    assert {
        "WebhookUrl", "BusName", "BusArn", "EventsTable", "PoolTable", "IssuesTable", "ResultsBucket",
        "IssueQueueUrl", "CleanupQueueUrl", "GatekeeperQueueUrl", "NotifierQueueUrl", "CapacityQueueUrl",
        "OrgEventsQueueUrl", "GithubTokenSecretArn", "WebhookSecretArn", "ClusterName", "ServiceName",
        "WorkerTaskRoleArn", "RegistrarTopicArn",
    } <= keys


# ------------------------------------------------------------------ public webhook (issue 12 §4)

def test_webhook_stage_is_throttled_and_its_function_reserves_what_a_flood_may_use(mgmt: dict[str, Any]) -> None:
    res, params = mgmt["Resources"], mgmt["Parameters"]
    # Every public (unauthenticated) method is behind a throttled stage.
    public = [m for m in of_type(mgmt, "AWS::ApiGateway::Method").values()
              if m["Properties"]["AuthorizationType"] == "NONE"]
    assert public
    for method in public:
        api = method["Properties"]["RestApiId"]["Ref"]
        stages = [d["Properties"]["StageDescription"] for d in of_type(mgmt, "AWS::ApiGateway::Deployment").values()
                  if d["Properties"]["RestApiId"] == {"Ref": api}]
        assert stages, api
        for stage in stages:
            rate, burst = (params[stage[k]["Ref"]]["Default"] for k in ("ThrottlingRateLimit", "ThrottlingBurstLimit"))
            assert 0 < rate <= burst
    # The function behind it reserves a bounded share; no other function reserves any, so the
    # rest of the account's pool stays for them (Lambda keeps 100 unreserved).
    reserved = {k: f["Properties"]["ReservedConcurrentExecutions"] for k, f in of_type(mgmt, "AWS::Lambda::Function").items()
                if "ReservedConcurrentExecutions" in f["Properties"]}
    assert set(reserved) == {"WebhookFunction"}
    webhook = params[reserved["WebhookFunction"]["Ref"]]
    assert 1 <= webhook["Default"] <= 1000 - 100 - 100  # the default account limit leaves the others ≥ 100
    integration = res["WebhookMethod"]["Properties"]["Integration"]["Uri"]["Fn::Sub"]
    assert "${WebhookFunction.Arn}" in integration


# ------------------------------------------------------------------ alarms (issue 20 §3, §4)

# CloudWatch metric math functions (docs: "Using math expressions with CloudWatch metrics").
METRIC_MATH_FUNCTIONS = {
    "ABS", "ANOMALY_DETECTION_BAND", "AVG", "CEIL", "DATAPOINT_COUNT", "DIFF", "DIFF_TIME", "FILL",
    "FIRST", "FLOOR", "IF", "INSIGHT_RULE_METRIC", "LAST", "LOG", "LOG10", "MAX", "METRICS", "MIN",
    "MINUTE", "HOUR", "DAY", "DATE", "MONTH", "YEAR", "EPOCH", "PERIOD", "RATE", "REMOVE_EMPTY",
    "RUNNING_SUM", "SEARCH", "SERVICE_QUOTA", "SLICE", "SORT", "STDDEV", "SUM", "TIME_SERIES",
}


def _alarm_metrics(template: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(k, a["Properties"]["Metrics"]) for k, a in of_type(template, "AWS::CloudWatch::Alarm").items()
            if "Metrics" in a["Properties"]]


def check_expression(expression: str, *, metric_ids: set[str], expression_ids: set[str]) -> None:
    """Parse a metric-math expression; raise AssertionError unless every metric id in it is
    ``FILL(id, 0)``, every name is a known id, and no constant sits in a series array.

    The forms we write (``IF(a > 0, 100 * b / a, 0)``, ``FILL(m, 0) + ...``) are also Python
    expressions, so Python's own parser builds the tree; anything outside that subset fails.
    """
    import ast

    tree = ast.parse(expression, mode="eval")
    wrapped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in METRIC_MATH_FUNCTIONS, ast.dump(node)
            if node.func.id == "FILL":
                target, value = node.args
                assert isinstance(target, ast.Name) and target.id in metric_ids, expression
                assert isinstance(value, ast.Constant) and value.value == 0, expression
                wrapped.add(id(target))
        elif isinstance(node, ast.List):  # MAX([a, 1]): a constant in a time-series array
            assert not any(isinstance(e, ast.Constant) for e in node.elts), expression
        elif isinstance(node, ast.Name) and not any(node is c.func for c in ast.walk(tree) if isinstance(c, ast.Call)):
            assert node.id in metric_ids | expression_ids, f"unknown id {node.id} in {expression}"
            if node.id in metric_ids:
                assert id(node) in wrapped, f"{node.id} is not FILL({node.id}, 0) in {expression}"
        else:
            allowed = (ast.Expression, ast.BinOp, ast.Compare, ast.Constant, ast.Load, ast.UnaryOp,
                       ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.Gt, ast.GtE, ast.Lt,
                       ast.LtE, ast.Eq, ast.NotEq, ast.Name)
            assert isinstance(node, allowed), f"{type(node).__name__} in {expression}"


@pytest.mark.parametrize("name", ["management.yaml", "worker.yaml"])
def test_every_alarm_expression_parses_and_fills_every_metric(name: str) -> None:
    template = load_template((TEMPLATES / name).read_text())
    alarms = _alarm_metrics(template)
    assert alarms
    for alarm, metrics in alarms:
        metric_ids = {m["Id"] for m in metrics if "MetricStat" in m}
        expression_ids = {m["Id"] for m in metrics if "Expression" in m}
        # PutMetricAlarm takes at most 10 MetricStat and 10 Expression queries.
        assert len(metric_ids) <= 10 and len(expression_ids) <= 10, alarm
        assert [m["Id"] for m in metrics if m.get("ReturnData", True)] and sum(
            1 for m in metrics if m.get("ReturnData", True)) == 1, alarm
        for m in metrics:
            if "Expression" in m:
                check_expression(m["Expression"], metric_ids=metric_ids, expression_ids=expression_ids - {m["Id"]})
        # Every metric is used by some expression (a forgotten operand is a silent gap).
        used = " ".join(m["Expression"] for m in metrics if "Expression" in m)
        assert all(f"FILL({i}, 0)" in used for i in metric_ids), alarm


def test_expression_check_rejects_what_cloudwatch_may_reject_or_leave_silent() -> None:
    ids = {"e1", "i1"}
    check_expression("IF(inv > 0, 100 * err / inv, 0)", metric_ids=ids, expression_ids={"inv", "err"})
    for bad in ("e1 + FILL(i1, 0)",  # a bare operand: no datapoint when e1 is missing
                "100 * FILL(e1, 0) / MAX([FILL(i1, 0), 1])",  # constant in a series array
                "FILL(e1, 1) + FILL(i1, 0)",  # filled with something else than 0
                "FILL(e2, 0)",  # unknown id
                "FILL(e1, 0) if 1 else 0"):  # not metric math
        with pytest.raises(AssertionError):
            check_expression(bad, metric_ids=ids, expression_ids=set())


def test_dlq_alarm_watches_every_dead_letter_queue(mgmt: dict[str, Any]) -> None:
    res = mgmt["Resources"]
    dlqs = {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for q in of_type(mgmt, "AWS::SQS::Queue").values() if "RedrivePolicy" in q["Properties"]}
    for rule in of_type(mgmt, "AWS::Events::Rule").values():
        dlqs |= {t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] for t in rule["Properties"]["Targets"]
                 if "DeadLetterConfig" in t}
    dlqs.add(res["PublisherMapping"]["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0])
    watched = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
               for m in res["DlqNotEmptyAlarm"]["Properties"]["Metrics"] if "MetricStat" in m}
    assert watched == dlqs


def test_alarm_topic_uses_a_key_cloudwatch_may_use(mgmt: dict[str, Any]) -> None:
    res = mgmt["Resources"]
    topics = {k for a in of_type(mgmt, "AWS::CloudWatch::Alarm").values()
              for act in a["Properties"].get("AlarmActions", []) if "Ref" in act
              for k in [act["Ref"]] if res[k]["Type"] == "AWS::SNS::Topic"}
    assert topics == {"AlarmTopic"}
    key_ref = res["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert isinstance(key_ref, dict), "an AWS-managed alias/aws/sns key does not let CloudWatch publish"
    key = res[key_ref["Fn::GetAtt"][0]]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1 and cloudwatch[0]["Effect"] == "Allow"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


# ------------------------------------------------------------------ worker capacity (issue 20 §5)

def _resolved(template: dict[str, Any], logical_id: str, **params: str) -> dict[str, Any]:
    from tests.cfn_placeholders import resolver

    res = resolver(template, params)
    return dict(res.value(template["Resources"][logical_id]["Properties"]))


def test_desired_count_is_sent_on_create_only_and_max_capacity_never_changes(worker: dict[str, Any]) -> None:
    create = _resolved(worker, "WorkerService", CreatingStack="true")
    update = _resolved(worker, "WorkerService", CreatingStack="false")
    assert create["DesiredCount"] == 0  # no task before the pool has an account
    assert "DesiredCount" not in update  # an update leaves the autoscaler's count alone
    assert {k: v for k, v in create.items() if k != "DesiredCount"} == update
    assert worker["Parameters"]["CreatingStack"]["Default"] == "false"  # forgetting it is safe
    # MaxCapacity is required, so it stays constant: whatever the deploy passes, the scalable
    # target resolves the same, and CloudFormation never re-sends it over the capacity function's.
    variants = [{"CreatingStack": c, "WorkerImage": i, "WorkerBundleKey": b, "ExternalId": e}
                for c, i, b, e in [("true", "", "a.zip", "x1"), ("false", "me/w:2", "b.zip", "x2")]]
    targets = [_resolved(worker, "WorkerScalableTarget", **v) for v in variants]
    assert targets[0] == targets[1] and targets[0]["MinCapacity"] == 0


def test_deploy_marks_only_a_creating_change_set() -> None:
    from gip.cli.deploy import creating_stack

    assert creating_stack(None, local=False) == "true"
    assert creating_stack("ROLLBACK_COMPLETE", local=False) == "true"  # deleted, then created again
    assert creating_stack("UPDATE_COMPLETE", local=False) == "false"
    assert creating_stack("CREATE_COMPLETE", local=False) == "false"
    assert creating_stack("UPDATE_COMPLETE", local=True) == "true"  # moto runs no tasks


# ------------------------------------------------------------------ worker role id (issue 20 §6)

def test_member_trust_names_the_worker_role_by_its_unique_id(worker: dict[str, Any], member: dict[str, Any]) -> None:
    from gip.cli.deploy import DeployOptions, member_parameters
    from gip.cli.stackset import changed_parameters, needs_update

    assert worker["Outputs"]["WorkerTaskRoleId"]["Value"] == {"Fn::GetAtt": ["WorkerTaskRole", "RoleId"]}
    assert "Default" not in member["Parameters"]["WorkerTaskRoleId"]
    # Every statement that trusts the worker role depends on its id, so a new id re-writes the
    # trust policy (and IAM re-resolves the ARN to the new role).
    statements = member["Resources"]["ProcessingRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    worker_statements = [s for s in statements if s["Principal"] == {"AWS": {"Ref": "WorkerTaskRoleArn"}}]
    assert worker_statements
    for statement in worker_statements:
        assert statement["Condition"]["StringLike"]["aws:userid"] == {"Fn::Sub": "${WorkerTaskRoleId}:*"}
    out = {"WorkerTaskRoleArn": "arn:aws:iam::123456789012:role/p-worker", "WorkerTaskRoleId": "AROAOLDOLDOLDOLDOLD1"}
    old = member_parameters(DeployOptions(org_id="o-abcdefghij"), out, "ext")
    new = member_parameters(DeployOptions(org_id="o-abcdefghij"), {**out, "WorkerTaskRoleId": "AROANEWNEWNEWNEWNEW2"}, "ext")
    assert old["WorkerTaskRoleId"] == "AROAOLDOLDOLDOLDOLD1"
    live = {"TemplateBody": "T", "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in old.items()]}
    assert not needs_update(live, template="T", parameters=old)
    assert needs_update(live, template="T", parameters=new)  # same ARN, new role: every instance updates
    assert changed_parameters(live, new) == ["WorkerTaskRoleId"]


# ------------------------------------------------------------------ static checks (issue 12 §5)

def test_every_checkov_skip_has_a_reason() -> None:
    import re

    import yaml

    path = TEMPLATES.parent / ".checkov.yaml"
    config = yaml.safe_load(path.read_text())
    skipped = config["skip-check"]
    lines = {m.group(1): m.group(2).strip() for m in
             re.finditer(r"^\s*-\s*(CKV2?_[A-Z0-9_]+)\s*#\s*(.*)$", path.read_text(), re.MULTILINE)}
    assert skipped and set(skipped) == set(lines)
    assert all(len(reason) >= 20 for reason in lines.values()), lines
    assert config["directory"] == ["templates"] and config["framework"] == ["cloudformation"]
    # `make lint` (hence `make test` and .ci/run) runs checkov with this file.
    makefile = (TEMPLATES.parent / "Makefile").read_text()
    assert re.search(r"^lint:.*\bcheckov\b", makefile, re.MULTILINE)
    assert "--config-file .checkov.yaml" in makefile


# ------------------------------------------------------------------ metrics, alarms, dashboard (issue 13)
# The names come from gip/domain/metrics.py, the module the emitters use: they cannot drift.

def _sub_text(value: Any) -> str:
    """A ``!Sub`` string with ``${X}`` left as is (placeholders compare as text)."""
    return value["Fn::Sub"] if isinstance(value, dict) else str(value)


def _dashboard_rows(worker: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Every metric row of the dashboard, the ``.`` / ``...`` shorthands expanded: (title, row)."""
    import json
    import re

    [dashboard] = of_type(worker, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", _sub_text(dashboard["Properties"]["DashboardBody"])))
    rows = []
    for widget in body["widgets"]:
        props = widget["properties"]
        assert props["region"] == "<AWS::Region>" and widget["type"] == "metric", props
        previous: list[str] = []
        for row in props["metrics"]:
            if row[0] == "...":  # the row above with its last value(s) replaced
                row = previous[:len(previous) - len(row) + 1] + row[1:]
            else:
                row = [previous[i] if v == "." else v for i, v in enumerate(row)]
            rows.append((props["title"], row))
            previous = row
    return rows


def _emitted() -> dict[str, Any]:
    from gip.domain import metrics

    return {m.name: m for m in metrics.ALL}


def test_dashboard_shows_every_emitted_metric_with_its_exact_dimensions(worker: dict[str, Any]) -> None:
    from gip.domain import metrics

    shown: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for _, row in _dashboard_rows(worker):
        if row[0] != metrics.NAMESPACE:
            continue
        dims = dict(zip(row[2::2], row[3::2], strict=True))
        metric = _emitted()[row[1]]  # a KeyError: a name the code never emits
        assert set(dims) == {metrics.PREFIX, *metric.dimensions} and dims[metrics.PREFIX] == "<Prefix>", row
        shown.setdefault(row[1], set()).add(tuple(sorted((k, v) for k, v in dims.items() if k != metrics.PREFIX)))
    assert set(shown) == set(_emitted())
    assert {v for (pair,) in shown["IssuesProcessed"] for v in pair[1:]} == metrics.VERDICTS | {"other"}
    assert shown["IssueFailures"] == {(("Retryable", "true"),), (("Retryable", "false"),)}
    assert shown["LeaseSeconds"] == {(("End", "released"),), (("End", "timed_out"),)}


def test_dashboard_shows_every_dead_letter_queue_and_the_alarmed_lambdas(mgmt: dict[str, Any],
                                                                         worker: dict[str, Any]) -> None:
    rows = _dashboard_rows(worker)
    dlqs = {_sub_text(q["Properties"]["QueueName"]).replace("${Prefix}", "<Prefix>")
            for lid, q in of_type(mgmt, "AWS::SQS::Queue").items() if lid.endswith("Dlq")}
    assert {row[3] for _, row in rows if row[:2] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible"]} == dlqs
    alarmed = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
               for m in mgmt["Resources"]["LambdaErrorRateAlarm"]["Properties"]["Metrics"]
               if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "Errors"}
    names = {_sub_text(mgmt["Resources"][f]["Properties"]["FunctionName"]).replace("${Prefix}", "<Prefix>")
             for f in alarmed}
    assert {row[3] for _, row in rows if row[:2] == ["AWS/Lambda", "Errors"]} == names


def test_alarms_on_our_metrics_name_what_the_code_emits(mgmt: dict[str, Any], worker: dict[str, Any]) -> None:
    from gip.domain import metrics

    watched = {}
    for template in (mgmt, worker):
        for lid, alarm in of_type(template, "AWS::CloudWatch::Alarm").items():
            props = alarm["Properties"]
            if props.get("Namespace") != metrics.NAMESPACE:
                continue
            metric = _emitted()[props["MetricName"]]
            dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
            assert set(dims) == {metrics.PREFIX, *metric.dimensions} and dims[metrics.PREFIX] == {"Ref": "Prefix"}, lid
            assert props["AlarmActions"], lid
            watched[lid] = (metric.name, {k: v for k, v in dims.items() if k != metrics.PREFIX})
    assert watched == {"NoUsableAccountsAlarm": ("UsableAccounts", {}),
                       "NonRetryableFailuresAlarm": ("IssueFailures", {"Retryable": "false"}),
                       "QuarantineAlarm": ("Quarantines", {})}
    topic = mgmt["Resources"]["AlarmTopic"]["Properties"]["TopicName"]["Fn::Sub"]
    for lid in ("NonRetryableFailuresAlarm", "QuarantineAlarm"):  # in the worker stack: the topic by name
        [action] = worker["Resources"][lid]["Properties"]["AlarmActions"]
        assert action["Fn::Sub"].endswith(f":{topic}")


def test_the_worker_names_its_service_and_namespace_as_the_code_does(worker: dict[str, Any]) -> None:
    from gip.domain import metrics

    [task] = of_type(worker, "AWS::ECS::TaskDefinition").values()
    env = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == metrics.NAMESPACE and env["POWERTOOLS_SERVICE_NAME"] == "worker"


def test_every_lambda_handler_sets_up_its_logs_under_its_own_name(mgmt: dict[str, Any]) -> None:
    import importlib

    services = {}
    for lid, function in of_type(mgmt, "AWS::Lambda::Function").items():
        module, _, attribute = function["Properties"]["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module), attribute)
        services[lid] = getattr(handler, "service", None)  # set by gip.observability.entry
        assert services[lid] and _sub_text(function["Properties"]["FunctionName"]).endswith(f"-{services[lid]}"), lid
    assert len(set(services.values())) == len(services)
