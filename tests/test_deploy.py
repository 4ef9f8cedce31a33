"""bootstrap deploy/destroy end to end against a moto SERVER over HTTP, plus the pure parts.

The stacks are deployed once per module (``deployed``) from a frozen copy of the sources, so
concurrent edits elsewhere cannot change the bundle hashes between the two runs.
Dependency vendoring uses ``FakeInstaller`` (no network pip in tests).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.client
import botocore.exceptions
import pytest

from gip.adapters import aws
from gip.cli import packaging, stacks
from gip.cli.deploy import deploy, render_outputs
from gip.cli.destroy import DestroyOptions, destroy
from gip.errors import GipError, UsageError
from tests.deploy_support import ORG, FakeInstaller, RecordingReporter, copy_source, options

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "github-issue-processor"
ACCOUNT = "123456789012"
QUEUES = ["gatekeeper", "issues", "notifier", "cleanup", "capacity", "org-events"]
FIFO = {"notifier"}  # one message group: serial GitHub writes (docs/internals.md)


def fifo(name: str) -> str:
    """The queue name as deployed: FIFO queues end in .fifo."""
    return f"{name}.fifo" if name.removesuffix("-dlq") in FIFO else name
STABLE_OUTPUTS = {
    "WebhookUrl", "BusName", "BusArn", "EventsTable", "PoolTable", "IssuesTable", "ResultsBucket",
    "IssueQueueUrl", "CleanupQueueUrl", "GatekeeperQueueUrl", "NotifierQueueUrl", "CapacityQueueUrl",
    "OrgEventsQueueUrl", "GithubTokenSecretArn", "WebhookSecretArn", "ClusterName", "ServiceName",
    "WorkerTaskRoleArn", "RegistrarTopicArn",
}
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def frozen_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="module")
def deployed(moto_server: str, frozen_src: Path) -> SimpleNamespace:
    reporter, installer = RecordingReporter(), FakeInstaller()
    out = deploy(options(moto_server, installer=installer, source_root=frozen_src), reporter)
    return SimpleNamespace(url=moto_server, out=out, reporter=reporter, installer=installer, src=frozen_src)


def client(url: str, name: str) -> Any:
    return boto3.client(name, endpoint_url=url, region_name="us-east-1")


# ------------------------------------------------------------------ what exists after deploy

def test_events_table_streams_new_images_with_time_and_correlation_indexes(deployed: SimpleNamespace) -> None:
    table = client(deployed.url, "dynamodb").describe_table(TableName=f"{PREFIX}-events")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {"by-day", "by-correlation"}
    # moto's CloudFormation drops SSESpecification (and update_table cannot add it), so
    # table encryption is asserted on the template (test_templates.py).
    assert deployed.out["EventsStreamArn"] == table["LatestStreamArn"]


def test_pool_table_has_status_expiry_and_reserved_indexes(deployed: SimpleNamespace) -> None:
    table = client(deployed.url, "dynamodb").describe_table(TableName=f"{PREFIX}-pool")["Table"]
    keys = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in table["GlobalSecondaryIndexes"]}
    assert keys == {"by-status": ["status", "rand"], "by-expiry": ["leased", "expires_at"],
                    "by-reserved": ["leased", "reserved_at"]}
    client(deployed.url, "dynamodb").describe_table(TableName=f"{PREFIX}-issues")


@pytest.mark.parametrize("name", QUEUES)
def test_consumer_queue_redrives_to_its_dlq_and_lets_only_our_rule_send(deployed: SimpleNamespace, name: str) -> None:
    sqs = client(deployed.url, "sqs")
    url = sqs.get_queue_url(QueueName=f"{PREFIX}-{fifo(name)}")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{PREFIX}-{fifo(name + '-dlq')}"
    assert int(redrive["maxReceiveCount"]) >= 3
    assert attrs["SqsManagedSseEnabled"] == "true"
    # QueuePolicy is skipped by moto's CloudFormation: local mode created it through the API.
    statement = json.loads(attrs["Policy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"]


def test_buckets_are_encrypted_and_block_public_access(deployed: SimpleNamespace) -> None:
    s3 = client(deployed.url, "s3")
    for bucket in (f"{PREFIX}-results-{ACCOUNT}", packaging.artifacts_bucket_name(PREFIX, ACCOUNT, "us-east-1")):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
    assert deployed.out["ResultsBucket"] == f"{PREFIX}-results-{ACCOUNT}"


def test_bus_rules_target_their_queues_with_a_dlq(deployed: SimpleNamespace) -> None:
    events = client(deployed.url, "events")
    bus = deployed.out["BusName"]
    assert bus == f"{PREFIX}-bus"
    expected = {"received": "gatekeeper", "queued": "issues", "notify": "notifier",
                "cleanup": "cleanup", "capacity": "capacity"}
    for rule, queue in expected.items():
        described = events.describe_rule(Name=f"{PREFIX}-{rule}", EventBusName=bus)
        assert json.loads(described["EventPattern"])["source"] == [PREFIX]
        (target,) = events.list_targets_by_rule(Rule=f"{PREFIX}-{rule}", EventBusName=bus)["Targets"]
        assert target["Arn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{PREFIX}-{fifo(queue)}"
        # EventBridge takes no FIFO dead-letter queue: the notifier's rule has a standard one.
        dlq = f"{queue}-rule-dlq" if queue in FIFO else f"{queue}-dlq"
        assert target["DeadLetterConfig"]["Arn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{PREFIX}-{dlq}"
        if queue in FIFO:
            assert target["SqsParameters"]["MessageGroupId"]


def test_lambdas_have_fixed_handlers_and_batch_failure_mappings(deployed: SimpleNamespace) -> None:
    lam = client(deployed.url, "lambda")
    handlers = {f["Handler"] for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith(PREFIX)}
    assert len(handlers) == 10 and {"handlers.org_events.handler", "handlers.redeliver.handler"} <= handlers
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    assert len(mappings) == 5
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert any(m["EventSourceArn"].endswith(f"{PREFIX}-notifier.fifo") for m in mappings)
    # Serial by its FIFO queue, not by throttling: no reserved concurrency on the notifier.
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=f"{PREFIX}-notifier")
    assert lam.get_function_concurrency(FunctionName=f"{PREFIX}-webhook")["ReservedConcurrentExecutions"] >= 1


def test_worker_task_definition_carries_the_contract_env(deployed: SimpleNamespace) -> None:
    ecs = client(deployed.url, "ecs")
    service = ecs.describe_services(cluster=deployed.out["ClusterName"], services=[deployed.out["ServiceName"]])
    task_def = service["services"][0]["taskDefinition"]
    container = ecs.describe_task_definition(taskDefinition=task_def)["taskDefinition"]["containerDefinitions"][0]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["ISSUE_QUEUE_URL"].endswith(f"/{ACCOUNT}/{PREFIX}-issues")
    assert env["EXTERNAL_ID"] == deployed.out["ExternalId"]
    assert {"EVENTS_TABLE", "POOL_TABLE", "ISSUES_TABLE", "BUS_NAME", "RESULTS_BUCKET", "CLEANUP_QUEUE_URL",
            "PROCESSING_ROLE_NAME", "GIP_PREFIX"} <= set(env)


def test_outputs_have_stable_keys_and_point_at_real_resources(deployed: SimpleNamespace) -> None:
    out = deployed.out
    assert set(out) >= STABLE_OUTPUTS
    sm = client(deployed.url, "secretsmanager")
    assert sm.describe_secret(SecretId=out["WebhookSecretArn"])["Name"] == f"{PREFIX}/webhook-secret"
    assert sm.describe_secret(SecretId=out["GithubTokenSecretArn"])["Name"] == f"{PREFIX}/github-token"
    client(deployed.url, "sqs").get_queue_attributes(QueueUrl=out["OrgEventsQueueUrl"])
    lines = render_outputs(out)
    assert lines[2].split() == ["WebhookUrl", out["WebhookUrl"]]


def test_local_mode_says_what_moto_skipped_and_what_it_created(deployed: SimpleNamespace) -> None:
    notices = "\n".join(deployed.reporter.notices)
    for logical in ("GithubTokenSecret", "WebhookSecret", "IssueQueuePolicy", "WorkerScalableTarget",
                    "DlqNotEmptyAlarm", "SchemaRegistry", "ResultsBucketPolicy"):
        assert logical in notices
    assert "StackSet" in notices
    alarms = client(deployed.url, "cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX)["MetricAlarms"]
    assert f"{PREFIX}-dlq-not-empty" in {a["AlarmName"] for a in alarms}
    targets = client(deployed.url, "application-autoscaling").describe_scalable_targets(ServiceNamespace="ecs")
    assert targets["ScalableTargets"][0]["ResourceId"] == f"service/{PREFIX}-cluster/{PREFIX}-worker"


def test_lambda_bundle_holds_handlers_schemas_and_vendored_deps_without_boto3(deployed: SimpleNamespace) -> None:
    s3 = client(deployed.url, "s3")
    bucket = packaging.artifacts_bucket_name(PREFIX, ACCOUNT, "us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    lambda_key = next(k for k in keys if k.startswith("artifacts/lambda-"))
    names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=lambda_key)["Body"].read())).namelist()
    assert "fakedep/__init__.py" in names and "schemas/envelope.json" in names
    assert any(n.startswith("gip/store/") for n in names) and "handlers/webhook.py" in names
    assert not any("__pycache__" in n for n in names)
    assert all(not r.startswith(("boto3", "botocore")) for r in deployed.installer.calls[0])
    # The worker bundle carries the SDK too: the stock image has none and installs nothing.
    assert any(r.startswith("boto3") for r in deployed.installer.calls[1])


# ------------------------------------------------------------------ re-run, dry run, destroy

def test_a_deploy_builds_one_client_per_service(deployed: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    # local mode's gaps ask for a client per resource attribute: built once, reused
    from gip.adapters import aws

    built: list[str] = []
    original = aws.client
    monkeypatch.setattr(aws, "client", lambda args, name, **kw: (built.append(name), original(args, name, **kw))[1])
    assert deploy(options(deployed.url, source_root=deployed.src), RecordingReporter()) == deployed.out
    assert len(built) == len(set(built)) and {"cloudformation", "s3", "secretsmanager"} <= set(built)


def test_rerun_changes_nothing_and_uploads_nothing(deployed: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = client(deployed.url, "s3")
    bucket = packaging.artifacts_bucket_name(PREFIX, ACCOUNT, "us-east-1")
    before = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    reporter = RecordingReporter()
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, name: str, params: Any) -> Any:
        calls.append(name)
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    out = deploy(options(deployed.url, source_root=deployed.src), reporter)
    # DescribeStacks shows defaulted parameters: compared with the defaults filled in, a
    # no-op needs no change set round trip.
    assert "CreateChangeSet" not in calls and "DescribeStacks" in calls
    after = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before
    assert not any("uploaded" in line for line in reporter.infos)
    assert f"{PREFIX}: no changes" in reporter.infos and f"{PREFIX}-worker: no changes" in reporter.infos
    assert reporter.events == []  # nothing executed
    assert not any("created it through the API" in n for n in reporter.notices)
    assert out == deployed.out


def test_dry_run_of_a_new_deployment_creates_nothing(deployed: SimpleNamespace) -> None:
    reporter = RecordingReporter()
    out = deploy(options(deployed.url, prefix="gip-dry", dry_run=True, source_root=deployed.src), reporter)
    assert out == {}
    assert any(line.strip().startswith("Add") and "EventsTable" in line for line in reporter.infos)
    cfn = client(deployed.url, "cloudformation")
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [n for n in live if n.startswith("gip-dry")]
    assert not [t for t in client(deployed.url, "dynamodb").list_tables()["TableNames"] if t.startswith("gip-dry")]
    assert not [b for b in client(deployed.url, "s3").list_buckets()["Buckets"] if b["Name"].startswith("gip-dry")]


def test_dry_run_of_a_change_executes_nothing(deployed: SimpleNamespace) -> None:
    reporter = RecordingReporter()
    deploy(options(deployed.url, labels=["other"], dry_run=True, source_root=deployed.src), reporter)
    # the preview names the parameter that changes, old → new, and what happens outside the stacks
    assert "  parameter RequiredLabels: needs-reproduction → other" in reporter.infos
    assert not any("template or parameters changed" in line for line in reporter.infos)
    bucket = packaging.artifacts_bucket_name(PREFIX, ACCOUNT, "us-east-1")
    assert f"artifacts bucket {bucket}: exists" in reporter.infos
    assert any(line.startswith("  lambda bundle artifacts/lambda-") and line.endswith(": unchanged")
               for line in reporter.infos)
    assert f"StackSet {PREFIX}-member: not deployed (local mode registers member accounts directly)" in reporter.infos
    env = client(deployed.url, "lambda").get_function_configuration(FunctionName=f"{PREFIX}-webhook")["Environment"]
    assert env["Variables"]["REQUIRED_LABELS"] == "needs-reproduction"
    summaries = client(deployed.url, "cloudformation").list_change_sets(StackName=PREFIX)["Summaries"]
    assert [s for s in summaries if s["ExecutionStatus"] == "AVAILABLE"] == []
    assert reporter.events == []


def test_destroy_keeps_the_audit_log_and_results_unless_asked(deployed: SimpleNamespace) -> None:
    prefix = "gip-doomed"
    deploy(options(deployed.url, prefix=prefix, source_root=deployed.src), RecordingReporter())
    ddb, s3 = client(deployed.url, "dynamodb"), client(deployed.url, "s3")
    ddb.put_item(TableName=f"{prefix}-events", Item={"pk": {"S": "account-1"}, "sk": {"N": "1"}})
    s3.put_object(Bucket=f"{prefix}-results-{ACCOUNT}", Key="logs/x.txt", Body=b"x")
    ask = DestroyOptions(prefix=prefix, region="us-east-1", endpoint_url=deployed.url, local=True,
                         sleep=lambda _s: None, poll=0)
    refused = RecordingReporter(answer=False)
    with pytest.raises(Exception, match="not confirmed"):
        destroy(ask, refused)
    assert stacks.stack_status(client(deployed.url, "cloudformation"), prefix) is not None

    destroy(ask, RecordingReporter(answer=True))
    cfn = client(deployed.url, "cloudformation")
    assert stacks.stack_status(cfn, prefix) is None and stacks.stack_status(cfn, f"{prefix}-worker") is None
    tables = ddb.list_tables()["TableNames"]
    assert f"{prefix}-events" in tables and f"{prefix}-pool" not in tables
    assert ddb.get_item(TableName=f"{prefix}-events", Key={"pk": {"S": "account-1"}, "sk": {"N": "1"}})["Item"]
    assert s3.get_object(Bucket=f"{prefix}-results-{ACCOUNT}", Key="logs/x.txt")["Body"].read() == b"x"

    ask.delete_data = True
    destroy(ask, RecordingReporter(answer=True))
    assert f"{prefix}-events" not in ddb.list_tables()["TableNames"]
    assert not [b for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(prefix)]


def test_destroy_refuses_while_user_subscriptions_remain_and_removes_them_with_yes(
        deployed: SimpleNamespace) -> None:
    prefix = "gip-subbed"
    deploy(options(deployed.url, prefix=prefix, source_root=deployed.src), RecordingReporter())
    events, sqs = client(deployed.url, "events"), client(deployed.url, "sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=sqs.create_queue(QueueName="mine")["QueueUrl"],
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = f"{prefix}-bus"
    for name in ("audit", "ops"):
        events.put_rule(Name=f"{prefix}-sub-{name}", EventBusName=bus,
                        EventPattern=json.dumps({"source": [prefix]}), Tags=[{"Key": "gip:owner", "Value": "user"}])
        events.put_targets(Rule=f"{prefix}-sub-{name}", EventBusName=bus, Targets=[{"Id": "t", "Arn": queue_arn}])
    ask = DestroyOptions(prefix=prefix, region="us-east-1", endpoint_url=deployed.url, local=True,
                         sleep=lambda _s: None, poll=0)
    willing = RecordingReporter(answer=True)
    with pytest.raises(GipError) as refused:
        destroy(ask, willing)
    message = str(refused.value)
    assert "\n" not in message and f"{bus}" in message
    assert f"python bootstrap.py unsubscribe audit --prefix {prefix}" in message
    assert f"python bootstrap.py unsubscribe ops --prefix {prefix}" in message
    assert willing.questions == []  # refused before asking, nothing deleted
    cfn = client(deployed.url, "cloudformation")
    assert stacks.stack_status(cfn, prefix) is not None
    assert len(events.list_rules(EventBusName=bus, NamePrefix=f"{prefix}-sub-")["Rules"]) == 2

    ask.yes = True
    reporter = RecordingReporter(answer=True)
    destroy(ask, reporter)
    assert f"removed subscription {prefix}-sub-audit (1 target(s))" in reporter.infos
    assert f"removed subscription {prefix}-sub-ops (1 target(s))" in reporter.infos
    assert stacks.stack_status(cfn, prefix) is None
    with pytest.raises(botocore.exceptions.ClientError):
        events.list_rules(EventBusName=bus, NamePrefix=f"{prefix}-sub-")  # the bus went with the stack


def test_destroy_refusal_names_plain_unsubscribe_for_the_default_prefix() -> None:
    from gip.cli.destroy import subscriptions_block

    line = subscriptions_block(PREFIX, [f"{PREFIX}-sub-a"])
    assert line.startswith(f"1 subscription(s) keep {PREFIX}-bus")
    assert "run python bootstrap.py unsubscribe a (or destroy --yes" in line


# ------------------------------------------------------------------ errors: one line, right exit code

@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> Any:
    """gip.cli.main.main limited to our commands, so another command's unfinished module
    cannot break these tests."""
    from gip.cli import main as cli
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("deploy", "destroy")})
    return cli.main


def test_bad_org_id_exits_2_with_one_line(main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--org", "o-NOPE", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --org must look like o-")


def test_bad_org_id_fails_before_any_aws_call() -> None:
    with pytest.raises(UsageError):
        deploy(options("http://127.0.0.1:9", org_id="o-short"), RecordingReporter())


def test_no_credentials_exits_1_with_one_line(main: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["--org", ORG, "--region", "us-east-1", "--no-deps"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no AWS credentials" in err[0]


def test_unknown_region_exits_1_with_one_line(main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--org", ORG, "--region", "xx-nowhere-9", "--no-deps"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown AWS region" in err[0]


def test_access_denied_names_the_action() -> None:
    exc = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "CreateChangeSet")
    assert aws.describe(exc, action="cloudformation:CreateChangeSet") == (
        "permission denied (cloudformation:CreateChangeSet): AccessDenied: not allowed")


# ------------------------------------------------------------------ change sets, pure parts

class FakeCfn:
    """Just enough CloudFormation for plan/apply: canned change set, events and status."""

    def __init__(self, *, change_set: dict[str, Any], events: list[dict[str, Any]], final: str,
                 live_template: str = "old") -> None:
        self.change_set, self.pending, self.final = change_set, events, final
        self.live_template = live_template
        self.events: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.created = 0
        self.executed = False

    def get_template(self, StackName: str, TemplateStage: str) -> dict[str, str]:
        return {"TemplateBody": self.live_template}

    def get_template_summary(self, StackName: str) -> dict[str, Any]:
        return {"Parameters": []}

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = self.final if self.executed else "UPDATE_COMPLETE"
        return {"Stacks": [{"StackName": StackName, "StackId": "id", "StackStatus": status, "Parameters": []}]}

    def create_change_set(self, **kwargs: Any) -> dict[str, str]:
        self.created += 1
        return {"Id": "cs-1", "StackId": "id"}

    def describe_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        return self.change_set

    def delete_change_set(self, ChangeSetName: str) -> None:
        self.deleted.append(ChangeSetName)

    def execute_change_set(self, ChangeSetName: str) -> None:
        self.executed = True
        self.events = list(reversed(self.pending)) + self.events  # newest first

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": self.events}


def event(n: int, logical: str, rtype: str, status: str, reason: str = "") -> dict[str, Any]:
    return {"EventId": f"e{n}", "LogicalResourceId": logical, "ResourceType": rtype,
            "ResourceStatus": status, "ResourceStatusReason": reason}


def test_failed_update_names_the_first_failing_resource() -> None:
    cfn = FakeCfn(
        change_set={"Status": "CREATE_COMPLETE", "Changes": [
            {"ResourceChange": {"LogicalResourceId": "WebhookFunction", "ResourceType": "AWS::Lambda::Function",
                                "Action": "Modify", "Replacement": "False"}}]},
        events=[
            event(1, "WebhookFunction", "AWS::Lambda::Function", "UPDATE_FAILED", "Unzipped size must be smaller"),
            event(2, "Other", "AWS::SQS::Queue", "UPDATE_FAILED", "Resource update cancelled"),
            event(3, "gip", "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE"),
        ],
        final="UPDATE_ROLLBACK_COMPLETE",
    )
    reporter = RecordingReporter()
    plan = stacks.plan(cfn, stack_name="gip", template=stacks.Template(body="{}"), parameters={},
                       reporter=reporter, sleep=lambda _s: None)
    with pytest.raises(stacks.DeployFailed) as failed:
        stacks.apply(cfn, plan, reporter=reporter, sleep=lambda _s: None)
    assert str(failed.value) == (
        "stack gip failed: WebhookFunction (AWS::Lambda::Function): Unzipped size must be smaller")
    assert [e[2]["EventId"] for e in reporter.events] == ["e1", "e2", "e3"]


def test_no_changes_is_a_successful_plan_and_its_change_set_is_deleted() -> None:
    cfn = FakeCfn(change_set={"Status": "FAILED", "StatusReason":
                              "The submitted information didn't contain changes."}, events=[], final="UPDATE_COMPLETE")
    plan = stacks.plan(cfn, stack_name="gip", template=stacks.Template(body="{}"), parameters={},
                       reporter=RecordingReporter(), sleep=lambda _s: None)
    assert plan.no_changes and cfn.deleted == ["cs-1"]
    stacks.apply(cfn, plan, reporter=RecordingReporter())
    assert not cfn.executed


def test_same_template_and_parameters_plan_no_changes_without_a_change_set() -> None:
    cfn = FakeCfn(change_set={}, events=[], final="UPDATE_COMPLETE", live_template="{}")
    plan = stacks.plan(cfn, stack_name="gip", template=stacks.Template(body="{}"), parameters={},
                       reporter=RecordingReporter(), sleep=lambda _s: None)
    assert plan.no_changes and cfn.created == 0


def test_replacements_and_removals_are_risky_and_rendered() -> None:
    plan = stacks.Plan(stack_name="gip", kind="UPDATE", change_set_id="x", changes=(
        stacks.Change("EventsTable", "AWS::DynamoDB::Table", "Modify", "True"),
        stacks.Change("Queue", "AWS::SQS::Queue", "Remove"),
        stacks.Change("Fn", "AWS::Lambda::Function", "Modify", "False"),
    ))
    assert [c.logical_id for c in plan.risky] == ["EventsTable", "Queue"]
    lines = stacks.render_changes(plan)
    assert "replacement=True" in lines[1] and lines[2].split()[:2] == ["Remove", "Queue"]


# ------------------------------------------------------------------ packaging, pure parts

def test_zip_is_deterministic_and_skips_bytecode(tmp_path: Path) -> None:
    for top in ("gip", "handlers", "schemas"):
        (tmp_path / top / "__pycache__").mkdir(parents=True)
        (tmp_path / top / "a.py").write_text("x = 1\n")
        (tmp_path / top / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "setup.cfg").write_text("[options]\ninstall_requires =\n    boto3>=1\n    requests>=2\n")
    first = packaging.build("lambda", root=tmp_path, installer=None)
    (tmp_path / "handlers" / "a.py").touch()  # new mtime, same content
    second = packaging.build("lambda", root=tmp_path, installer=None)
    assert first.data == second.data and first.key == second.key
    assert zipfile.ZipFile(io.BytesIO(first.data)).namelist() == ["gip/a.py", "handlers/a.py", "schemas/a.py"]
    assert packaging.requirements(tmp_path / "setup.cfg") == ["requests>=2"]


def test_runtime_provided_packages_are_pruned(tmp_path: Path) -> None:
    for name in ("boto3", "botocore-1.34.0.dist-info", "s3transfer", "requests", "bin"):
        (tmp_path / name).mkdir()
    packaging.prune_runtime_provided(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests"]


def test_artifacts_bucket_name_fits_s3_limit() -> None:
    name = packaging.artifacts_bucket_name("a-very-long-deployment-prefix-xx", ACCOUNT, "ap-southeast-2")
    assert len(name) <= 63 and name.startswith("a-very-long")
    assert packaging.artifacts_bucket_name(PREFIX, ACCOUNT, "us-east-1") == (
        f"{PREFIX}-artifacts-{ACCOUNT}-us-east-1")


def test_member_stackset_is_service_managed_and_targets_the_root(deployed: SimpleNamespace) -> None:
    # On the module's moto server: an in-process mock_aws would reset the server's backends.
    # Deletion is not asserted: moto's DeleteStackInstances ignores DeploymentTargets.
    from gip.cli import stackset

    template = "Resources:\n  T:\n    Type: AWS::SNS::Topic\n"
    org = client(deployed.url, "organizations")
    org.create_organization(FeatureSet="ALL")
    cfn = client(deployed.url, "cloudformation")
    root = stackset.org_root(org)
    reporter = RecordingReporter()
    assert stackset.deploy(cfn, name="m", template=template, parameters={}, ou_ids=[root],
                           region="us-east-1", reporter=reporter, sleep=lambda _s: None)
    assert cfn.describe_stack_set(StackSetName="m")["StackSet"]["PermissionModel"] == "SERVICE_MANAGED"
    assert cfn.list_stack_instances(StackSetName="m")["Summaries"]
    assert reporter.infos[-1].endswith("SUCCEEDED")


def test_stackset_update_is_needed_only_when_template_or_parameters_differ() -> None:
    from gip.cli.stackset import needs_update

    live = {"TemplateBody": "A\n", "Parameters": [{"ParameterKey": "P", "ParameterValue": "1"}]}
    assert not needs_update(live, template="A", parameters={"P": "1"})
    assert needs_update(live, template="B", parameters={"P": "1"})
    assert needs_update(live, template="A", parameters={"P": "2"})


def test_command_line_maps_to_options_and_a_loopback_endpoint_means_local() -> None:
    import argparse

    from gip.cli.deploy import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--region")
    parser.add_argument("--profile")
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--endpoint-url")
    add_arguments(parser)
    args = parser.parse_args(["--org", ORG, "--labels", "a, b", "--ou", "ou-ab12-abcdefgh", "--ou",
                              "ou-cd34-abcdefgh", "--endpoint-url", "http://127.0.0.1:4566", "--dry-run"])
    opts = options_from_args(args)
    assert (opts.labels, opts.ou_ids, opts.dry_run, opts.local) == (
        ["a", "b"], ["ou-ab12-abcdefgh", "ou-cd34-abcdefgh"], True, True)
    assert not aws.is_local_endpoint("https://cloudformation.us-east-1.amazonaws.com")


def test_removal_is_not_executed_without_confirmation(
        deployed: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gip.cli.deploy

    for path in (ROOT / "templates").glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    text = (tmp_path / "management.yaml").read_text()
    start = text.index("  BusArchive:")
    end = text.index("\n  # ----", start)
    (tmp_path / "management.yaml").write_text(text[:start] + text[end + 1:])
    monkeypatch.setattr(gip.cli.deploy, "TEMPLATES", tmp_path)
    reporter = RecordingReporter(answer=False)
    with pytest.raises(Exception, match="not confirmed"):
        deploy(options(deployed.url, source_root=deployed.src), reporter)
    assert reporter.questions and any("Remove" in line and "BusArchive" in line for line in reporter.infos)
    assert client(deployed.url, "events").describe_archive(ArchiveName=f"{PREFIX}-archive")["ArchiveName"]
    assert reporter.events == []


# ------------------------------------------------------------------ the dry-run preview, pure parts

def test_parameter_changes_name_old_and_new_and_skip_hidden_and_list_spelling() -> None:
    from gip.cli.preview import parameter_changes

    live = {"Labels": "a", "Regions": "['us-east-1', 'eu-west-1']", "Secret": "****", "Same": "x"}
    wanted = {"Labels": "b", "Regions": "us-east-1,eu-west-1", "Secret": "new", "Same": "x", "Added": "1"}
    assert parameter_changes(live, wanted) == [("Added", "(new)", "1"), ("Labels", "a", "b")]


class FakeStackSets:
    def __init__(self, current: dict[str, Any] | None) -> None:
        self.current = current

    def describe_stack_set(self, StackSetName: str) -> dict[str, Any]:
        if self.current is None:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "StackSetNotFoundException", "Message": "nope"}}, "DescribeStackSet")
        return {"StackSet": self.current}


def test_the_member_stackset_preview_says_created_updated_or_unchanged() -> None:
    from gip.cli.preview import stackset_lines

    kw: dict[str, Any] = {"name": "p-member", "template": "T", "ou_ids": ["ou-ab12-abcdefgh"]}
    assert stackset_lines(FakeStackSets(None), parameters=None, **kw) == [
        "StackSet p-member: would be created and deployed to ou-ab12-abcdefgh (after the stacks)"]
    live = {"TemplateBody": "T", "Parameters": [{"ParameterKey": "Prefix", "ParameterValue": "p"}]}
    assert stackset_lines(FakeStackSets(live), parameters={"Prefix": "p"}, **kw) == ["StackSet p-member: no changes"]
    assert stackset_lines(FakeStackSets({**live, "TemplateBody": "U"}), parameters={"Prefix": "q"}, **kw) == [
        "StackSet p-member: would update every instance (template; parameters Prefix)"]
