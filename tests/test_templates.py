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

from ops.local_gaps import load_template

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
QUEUES = ["Gatekeeper", "Issue", "Notifier", "Cleanup", "Capacity", "OrgEvents"]
HANDLERS = {
    "handlers.webhook.handler", "handlers.publisher.handler", "handlers.gatekeeper.handler",
    "handlers.notifier.handler", "handlers.sweeper.handler", "handlers.capacity.handler",
    "handlers.org_events.handler", "handlers.registrar.handler", "handlers.reconcile.handler",
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


def test_templates_fit_inline_template_body_limit() -> None:
    # Under 51,200 bytes they go as TemplateBody: a dry run needs no S3 upload.
    for path in TEMPLATES.glob("*.yaml"):
        assert len(path.read_bytes()) < 51_200, path.name


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


def test_org_events_rule_matches_every_membership_event_the_handler_classifies(mgmt: dict[str, Any]) -> None:
    from handlers import org_events

    pattern = mgmt["Resources"]["OrgEventsRule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.organizations"]
    assert set(pattern["detail-type"]) == {"AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"}
    names = pattern["detail"]["eventName"]
    handled = {*org_events.JOIN_EVENTS, *org_events.LEAVE_EVENTS, "MoveAccount"}
    assert set(names) == handled and len(names) == len(handled)
    assert {"CloseAccountResult", "LeaveOrganization", "AccountJoinedOrganization",
            "AccountDepartedOrganization"} <= set(names)
    # Each name is one classify() acts on (not "not a membership event").
    for name in names:
        event = {"detail": {"eventName": name, "eventSource": org_events.ORG_SOURCE}}
        assert org_events.classify(event).reason != "not a membership event", name


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
    from ops.deploy import DeployOptions, _parameters

    opts = DeployOptions(org_id="o-abcdefghij", ou_ids=["ou-ab12-abcdefgh", "ou-ab12-ijklmnop"])
    params = _parameters(opts, bucket="b", external_id="x", artifacts={
        "lambda": SimpleNamespace(key="l.zip"), "worker": SimpleNamespace(key="w.zip")})
    assert params["management.yaml"]["TargetOuIds"] == "ou-ab12-abcdefgh,ou-ab12-ijklmnop"


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

    # org_events.Organization: management_account_id, describe, parent_in_scope/account_in_scope.
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
    assert mappings["NotifierMapping"]["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mgmt["Resources"]["NotifierFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1
    assert mappings["PublisherMapping"]["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}


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


def test_only_the_stock_image_runs_snippets_as_nobody(worker: dict[str, Any]) -> None:
    container = worker["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    # Not in Environment: local mode reuses it, and its python may not be executable by nobody.
    assert "RUN_AS_USER" not in {e["Name"] for e in container["Environment"]}
    stock, own = container["Command"]["Fn::If"][1][0], container["Command"]["Fn::If"][2]
    assert "RUN_AS_USER=nobody PYTHONPATH=/opt/app exec python -m worker" in stock
    # The bundle's deps/ (boto3 included) on the image Python's path through a .pth: snippets
    # (no PYTHONPATH, run as nobody) can import it; nothing is pip-installed at start.
    assert 'sysconfig.get_paths()["purelib"], "gip-bundle.pth"' in stock and "/opt/app/deps" in stock
    assert "pip install" not in stock
    assert own == ["python", "-m", "worker"]  # worker/Dockerfile already runs as a non-root USER


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
    from ops.deploy import DeployOptions, member_parameters

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
