"""subscribe / unsubscribe / subscriptions: pure pattern checks, then a moto server end to end."""

from __future__ import annotations

import argparse
import json
from typing import Any

import boto3
import pytest

from gip.cli import subscribe as sub
from gip.cli import subscription_target as tgt
from gip.cli.main import main
from gip.errors import UsageError

KNOWN = {"IssueProcessed", "IssueQueued", "AccountReserved"}


# ---------------------------------------------------------------- pure


def test_pattern_that_is_not_json_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not valid JSON"):
        sub.load_pattern('{"detail-type": [IssueProcessed]}')


def test_pattern_can_come_from_a_file(tmp_path: Any) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"detail-type": ["IssueProcessed"]}')
    assert sub.load_pattern(f"@{path}") == {"detail-type": ["IssueProcessed"]}
    with pytest.raises(UsageError, match="cannot read"):
        sub.load_pattern(f"@{tmp_path / 'missing.json'}")


def test_unknown_detail_type_is_refused_and_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown detail-type IssueExploded"):
        sub.check_pattern({"detail-type": ["IssueProcessed", "IssueExploded"]}, known=KNOWN, prefix="p")


def test_prefix_filter_must_match_some_known_type() -> None:
    assert sub.check_pattern({"detail-type": [{"prefix": "Issue"}]}, known=KNOWN, prefix="p") == []
    with pytest.raises(UsageError, match="matches no known"):
        sub.check_pattern({"detail-type": [{"prefix": "Org"}]}, known=KNOWN, prefix="p")


def test_foreign_source_gives_a_notice_not_an_error() -> None:
    notices = sub.check_pattern({"source": ["aws.ec2"]}, known=KNOWN, prefix="gip")
    assert len(notices) == 1 and "never matches" in notices[0]


def test_rule_name_is_prefixed_and_checked() -> None:
    assert sub.rule_name("gip", "audit") == "gip-sub-audit"
    with pytest.raises(UsageError):
        sub.rule_name("gip", "bad name")
    with pytest.raises(UsageError, match="64"):
        sub.rule_name("gip", "x" * 60)


def test_add_statement_replaces_same_sid_and_remove_leaves_others() -> None:
    other = {"Sid": "keep", "Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "*"}
    base = json.dumps({"Version": "2012-10-17", "Statement": [other]})
    stmt = tgt.grant_statement(kind="sqs", sid="gip-sub-a", target_arn="arn:q", rule_arn="arn:r")
    twice = tgt.add_statement(tgt.add_statement(base, stmt), stmt)
    assert [s["Sid"] for s in json.loads(twice)["Statement"]] == ["keep", "gip-sub-a"]
    left = tgt.remove_statement(twice, "gip-sub-a")
    assert left is not None and [s["Sid"] for s in json.loads(left)["Statement"]] == ["keep"]
    assert tgt.remove_statement(tgt.add_statement(None, stmt), "gip-sub-a") is None


def test_sample_event_fills_required_data_from_the_schema() -> None:
    schema = {"properties": {"data": {"type": "object", "required": ["run", "verdict"],
                                      "properties": {"run": {"type": "integer"},
                                                     "verdict": {"enum": ["reproduced", "x"]}}}}}
    event = sub.sample_event("IssueProcessed", prefix="gip", account="1" * 12, region="eu-west-1", schema=schema)
    assert event["source"] == "gip" and event["detail-type"] == "IssueProcessed"
    assert event["detail"]["data"] == {"run": 1, "verdict": "reproduced"}
    assert event["detail"]["stream"].startswith("issue-")


def test_target_kind_reads_the_service_from_the_arn() -> None:
    assert tgt.target_kind("arn:aws:sqs:us-east-1:123456789012:q") == "sqs"
    assert tgt.target_kind("arn:aws:lambda:us-east-1:123456789012:function:f") == "lambda"
    with pytest.raises(UsageError):
        tgt.target_kind("my-queue")


class FakeEvents:
    """Stands in for EventBridge where TestEventPattern exists (real AWS)."""

    def __init__(self, *, match: set[str] | None = None, refuse: bool = False) -> None:
        self.match, self.refuse, self.tested = match or set(), refuse, []

    def test_event_pattern(self, *, EventPattern: str, Event: str) -> dict[str, bool]:
        import botocore.exceptions

        if self.refuse:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InvalidEventPatternException", "Message": "Event pattern is not valid."}},
                "TestEventPattern")
        detail_type = json.loads(Event)["detail-type"]
        self.tested.append(detail_type)
        return {"Result": detail_type in self.match}


BUS = {"Name": "gip-bus", "Arn": "arn:aws:events:eu-west-1:123456789012:event-bus/gip-bus"}


def test_test_event_pattern_names_the_samples_that_miss() -> None:
    fake = FakeEvents(match={"IssueProcessed"})
    pattern = {"detail-type": ["IssueProcessed", "IssueQueued"]}
    notices = sub._test_pattern(fake, pattern, bus=BUS, prefix="gip")
    assert fake.tested == ["IssueProcessed", "IssueQueued"]
    assert notices == ["notice: a sample IssueQueued event does not match (fine if you filter on detail fields)"]


def test_test_event_pattern_without_types_tries_every_type_and_warns_only_if_none_match() -> None:
    pattern = {"detail": {"data": {"verdict": ["reproduced"]}}}
    assert sub._test_pattern(FakeEvents(match={"IssueProcessed"}), pattern, bus=BUS, prefix="gip") == []
    fake = FakeEvents()
    assert "matches no sample" in sub._test_pattern(fake, pattern, bus=BUS, prefix="gip")[0]
    assert set(fake.tested) == sub.known_types()


def test_pattern_refused_by_eventbridge_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="EventBridge refuses the pattern: Event pattern is not valid"):
        sub._test_pattern(FakeEvents(refuse=True), {"detail-type": ["IssueQueued"]}, bus=BUS, prefix="gip")


def test_known_types_come_from_schemas_dir() -> None:
    types = sub.known_types()
    assert {"IssueProcessed", "AccountReserved"} <= types
    assert "envelope" not in types


# ---------------------------------------------------------------- moto server

PREFIX = "gipsub"


@pytest.fixture(scope="module")
def endpoint(moto_server: str) -> str:
    """The shared moto server (tests/conftest.py) with our bus on it."""
    boto3.client("events", endpoint_url=moto_server, region_name="us-east-1").create_event_bus(Name=f"{PREFIX}-bus")
    return moto_server


def cli(endpoint: str, *argv: str) -> int:
    return main([*argv, "--prefix", PREFIX, "--endpoint-url", endpoint, "--region", "us-east-1"])


def _queue(endpoint: str, name: str) -> tuple[str, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _put(endpoint: str, detail_type: str, event_id: str) -> None:
    detail = {"type": detail_type, "event_id": event_id, "stream": "issue-o/r#1", "data": {}}
    out = boto3.client("events", endpoint_url=endpoint).put_events(Entries=[{
        "EventBusName": f"{PREFIX}-bus", "Source": PREFIX, "DetailType": detail_type,
        "Detail": json.dumps(detail)}])
    assert out["FailedEntryCount"] == 0


def _drain(endpoint: str, url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return bodies
        bodies += [json.loads(m["Body"]) for m in msgs]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                         for i, m in enumerate(msgs)])


@pytest.mark.server
def test_subscribed_queue_gets_matching_events_only(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a queue subscribed to IssueProcessed
    url, arn = _queue(endpoint, "verdicts")
    code = cli(endpoint, "subscribe", "verdicts", "--pattern", '{"detail-type": ["IssueProcessed"]}', "--target", arn)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "subscribed gipsub-sub-verdicts" in out.out
    assert "not tested" in out.err  # moto has no TestEventPattern: skipped with a notice
    # WHEN one matching and one non-matching event are put on the bus
    _put(endpoint, "IssueProcessed", "e-match")
    _put(endpoint, "IssueQueued", "e-other")
    # THEN only the matching one arrives
    bodies = _drain(endpoint, url)
    assert [b["detail"]["event_id"] for b in bodies] == ["e-match"]
    assert bodies[0]["detail-type"] == "IssueProcessed"
    # AND the queue policy lets EventBridge send from that rule only
    policy = json.loads(boto3.client("sqs", endpoint_url=endpoint).get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    (stmt,) = policy["Statement"]
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"} and stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"].endswith("rule/gipsub-bus/gipsub-sub-verdicts")


@pytest.mark.server
def test_subscription_rule_is_tagged_as_user_rule_and_listed(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, arn = _queue(endpoint, "listed")
    events = boto3.client("events", endpoint_url=endpoint)
    events.put_rule(Name=f"{PREFIX}-received", EventBusName=f"{PREFIX}-bus",
                    EventPattern='{"detail-type": ["IssueReceived"]}')
    assert cli(endpoint, "subscribe", "listed", "--pattern", '{"detail-type": [{"prefix": "Account"}]}',
               "--target", arn, "--input-path", "$.detail") == 0
    rule_arn = events.describe_rule(Name=f"{PREFIX}-sub-listed", EventBusName=f"{PREFIX}-bus")["Arn"]
    tags = {t["Key"]: t["Value"] for t in events.list_tags_for_resource(ResourceARN=rule_arn)["Tags"]}
    assert tags["gip:owner"] == "user"
    (target,) = events.list_targets_by_rule(Rule=f"{PREFIX}-sub-listed", EventBusName=f"{PREFIX}-bus")["Targets"]
    assert target["InputPath"] == "$.detail"
    capsys.readouterr()
    assert cli(endpoint, "subscriptions", "--format", "json") == 0
    rows = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[f"{PREFIX}-sub-listed"]["owner"] == "user"
    assert rows[f"{PREFIX}-received"]["owner"] == "ours"
    assert cli(endpoint, "subscriptions") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RULE", "OWNER", "STATE", "TARGETS", "PATTERN"]
    assert any(line.startswith(f"{PREFIX}-sub-listed ") and " user " in line for line in lines)


@pytest.mark.server
def test_unsubscribe_removes_rule_targets_and_policy_statement(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    url, arn = _queue(endpoint, "gone")
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    keep = {"Sid": "theirs", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [keep]})})
    assert cli(endpoint, "subscribe", "gone", "--pattern", '{"detail-type": ["IssueQueued"]}', "--target", arn) == 0
    assert cli(endpoint, "unsubscribe", "gone") == 0
    events = boto3.client("events", endpoint_url=endpoint)
    names = [r["Name"] for r in events.list_rules(EventBusName=f"{PREFIX}-bus")["Rules"]]
    assert f"{PREFIX}-sub-gone" not in names
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["theirs"]
    _put(endpoint, "IssueQueued", "after")
    assert _drain(endpoint, url) == []
    capsys.readouterr()
    assert cli(endpoint, "unsubscribe", "gone") == 1
    assert "no subscription 'gone'" in capsys.readouterr().err


@pytest.mark.server
def test_subscribe_with_unknown_type_is_refused_in_one_line(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, arn = _queue(endpoint, "refused")
    code = cli(endpoint, "subscribe", "bad", "--pattern", '{"detail-type": ["IssueExploded"]}', "--target", arn)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: unknown detail-type IssueExploded")
    names = [r["Name"] for r in boto3.client("events", endpoint_url=endpoint).list_rules(
        EventBusName=f"{PREFIX}-bus")["Rules"]]
    assert f"{PREFIX}-sub-bad" not in names


@pytest.mark.server
def test_subscribe_without_a_bus_is_one_line_not_found(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["subscribe", "x", "--pattern", '{"detail-type": ["IssueQueued"]}', "--target",
                 "arn:aws:sqs:us-east-1:123456789012:q", "--prefix", "nobus", "--endpoint-url", endpoint])
    assert code == 1
    assert "event bus nobus-bus not found" in capsys.readouterr().err


@pytest.mark.server
def test_sns_target_gets_a_topic_policy_statement_and_loses_it(endpoint: str) -> None:
    sns = boto3.client("sns", endpoint_url=endpoint)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    assert cli(endpoint, "subscribe", "alerts", "--pattern", '{"detail-type": ["AccountQuarantined"]}',
               "--target", topic) == 0
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    ours = [s for s in policy["Statement"] if s.get("Sid") == "gip-sub-alerts"]
    assert len(ours) == 1 and ours[0]["Action"] == "sns:Publish"
    assert cli(endpoint, "unsubscribe", "alerts") == 0
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert not [s for s in policy["Statement"] if s.get("Sid") == "gip-sub-alerts"]


@pytest.mark.server
def test_lambda_target_gets_an_invoke_permission_and_loses_it(endpoint: str) -> None:
    import io
    import zipfile

    role = boto3.client("iam", endpoint_url=endpoint).create_role(
        RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return event\n")
    lam = boto3.client("lambda", endpoint_url=endpoint)
    fn = lam.create_function(FunctionName="hook", Runtime="python3.11", Role=role, Handler="index.handler",
                             Code={"ZipFile": code.getvalue()})["FunctionArn"]
    assert cli(endpoint, "subscribe", "hook", "--pattern", '{"detail-type": ["IssueProcessed"]}', "--target", fn) == 0
    (stmt,) = json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]
    assert stmt["Sid"] == "gip-sub-hook" and stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert stmt["Condition"]["ArnLike"]["AWS:SourceArn"].endswith("rule/gipsub-bus/gipsub-sub-hook")
    assert cli(endpoint, "unsubscribe", "hook") == 0
    try:
        left = json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]
    except lam.exceptions.ResourceNotFoundException:
        left = []
    assert left == []


# ---------------------------------------------------------------- a failed subscribe changes nothing


def _snapshot(endpoint: str) -> list[dict[str, Any]]:
    args = argparse.Namespace(prefix=PREFIX, endpoint_url=endpoint, region="us-east-1", profile=None)
    return sub.list_rules(args)


def _statements(endpoint: str, url: str) -> list[dict[str, Any]]:
    attrs = boto3.client("sqs", endpoint_url=endpoint).get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    return json.loads(attrs["Policy"])["Statement"] if attrs.get("Policy") else []


@pytest.mark.server
@pytest.mark.parametrize("target", [
    "arn:aws:sqs:us-east-1:123456789012:no-such-queue",
    "arn:aws:sns:us-east-1:123456789012:no-such-topic",
    "arn:aws:lambda:us-east-1:123456789012:function:no-such-function",
])
def test_subscribe_to_a_missing_target_creates_nothing(endpoint: str, target: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(endpoint)
    capsys.readouterr()
    code = cli(endpoint, "subscribe", "missing", "--pattern", '{"detail-type": ["IssueQueued"]}',
               "--target", target)
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == f"error: target {target} not found: create it first (or check the ARN)"
    assert _snapshot(endpoint) == before


@pytest.mark.server
def test_target_refused_after_the_rule_was_created_leaves_no_rule(
        endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A FIFO queue needs SqsParameters: PutTargets fails after PutRule succeeded.
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName="ordered.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    before = _snapshot(endpoint)
    capsys.readouterr()
    code = cli(endpoint, "subscribe", "ordered", "--pattern", '{"detail-type": ["IssueQueued"]}',
               "--target", arn)
    err = capsys.readouterr().err
    assert code == 1 and "SqsParameters" in err.splitlines()[-1]
    assert _snapshot(endpoint) == before
    assert _statements(endpoint, url) == []


@pytest.mark.server
def test_grant_that_fails_after_the_target_was_added_removes_rule_and_target(
        endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gip.adapters import aws
    from tests.fakes.aws_faults import AwsFaults, Fault

    url, arn = _queue(endpoint, "denied")
    theirs = {"Sid": "theirs", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage",
              "Resource": arn}
    boto3.client("sqs", endpoint_url=endpoint).set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [theirs]})})
    real_client = aws.client
    planned: dict[str, list[Fault]] = {"SetQueueAttributes": [Fault("AccessDenied", status=403)]}

    def client_denying_policy_changes(args: Any, name: str, **kw: Any) -> Any:
        made = real_client(args, name, **kw)
        if name == "sqs":  # one fault shared by every client: the grant's call fails, the undo's works
            AwsFaults(made, service="sqs", planned=planned)
        return made

    monkeypatch.setattr(aws, "client", client_denying_policy_changes)
    before = _snapshot(endpoint)
    capsys.readouterr()
    code = cli(endpoint, "subscribe", "denied", "--pattern", '{"detail-type": ["IssueQueued"]}',
               "--target", arn)
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines()[-1].startswith("error: permission denied (sqs:SetQueueAttributes)")
    assert "notice: could not" not in err and planned["SetQueueAttributes"] == []
    assert _snapshot(endpoint) == before
    assert _statements(endpoint, url) == [theirs]
    _put(endpoint, "IssueQueued", "after-failed-subscribe")
    assert _drain(endpoint, url) == []


@pytest.mark.server
def test_existing_subscription_is_refused_and_kept_as_it_was(
        endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    url, arn = _queue(endpoint, "kept")
    assert cli(endpoint, "subscribe", "kept", "--pattern", '{"detail-type": ["IssueQueued"]}',
               "--target", arn) == 0
    before, statements = _snapshot(endpoint), _statements(endpoint, url)
    capsys.readouterr()
    _, other = _queue(endpoint, "kept-other")
    code = cli(endpoint, "subscribe", "kept", "--pattern", '{"detail-type": ["IssueProcessed"]}',
               "--target", other)
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == (f"error: subscription 'kept' already exists (rule {PREFIX}-sub-kept): "
                                    "unsubscribe it first")
    assert _snapshot(endpoint) == before and _statements(endpoint, url) == statements
    assert cli(endpoint, "unsubscribe", "kept") == 0
