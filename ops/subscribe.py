"""``subscribe`` / ``unsubscribe`` / ``subscriptions``: user rules on our event bus.

A subscription is one EventBridge rule ``<prefix>-sub-NAME`` on ``<prefix>-bus`` with one
target, tagged ``gip:owner=user`` so deploys and ``destroy`` leave it alone. Subscribing:

1. reads the pattern (JSON text or ``@file``) and checks every ``detail-type`` it names
   against ``schemas/`` (pure: :func:`check_pattern`);
2. asks EventBridge ``TestEventPattern`` whether a sample event of each named type matches
   (skipped with a notice where the API is missing, as on moto);
3. puts the rule and the target, then grants the target's resource policy so that delivery
   works: SQS queue policy, SNS topic policy or Lambda permission, one statement with Sid
   ``<prefix>-sub-NAME`` conditioned on the rule ARN. ``unsubscribe`` removes that statement.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore.exceptions

from handlers.core import schemas
from handlers.core.errors import GipError, NotFound, UsageError
from ops import aws
from ops.render import table

OWNER_TAG = "gip:owner"
USER = "user"
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_STATEMENT_PREFIX = "gip-sub-"


# ---------------------------------------------------------------- pure


def rule_name(prefix: str, name: str) -> str:
    """``<prefix>-sub-NAME``; EventBridge allows 64 chars of ``[.\\-_A-Za-z0-9]``."""
    if not _NAME_RE.match(name):
        raise UsageError(f"subscription name '{name}' may only use letters, digits, '.', '_' and '-'")
    full = f"{prefix}-sub-{name}"
    if len(full) > 64:
        raise UsageError(f"rule name '{full}' is longer than 64 characters: use a shorter NAME")
    return full


def statement_id(name: str) -> str:
    """The Sid of the policy statement this subscription adds to its target."""
    return f"{_STATEMENT_PREFIX}{name}"[:100]


def load_pattern(text: str) -> dict[str, Any]:
    """Parse ``--pattern``: JSON text, or ``@path`` to a file holding it. Raises UsageError."""
    source = "--pattern"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read pattern file {path}: {exc.strerror or exc}") from exc
        source = str(path)
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(pattern, dict) or not pattern:
        raise UsageError(f"{source} must be a non-empty JSON object (an EventBridge event pattern)")
    return pattern


def named_types(pattern: Mapping[str, Any]) -> list[str]:
    """The exact detail-types a pattern names (content filters such as prefix are not names)."""
    value = pattern.get("detail-type", [])
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def check_pattern(pattern: Mapping[str, Any], *, known: set[str], prefix: str) -> list[str]:
    """Refuse unknown detail-types (UsageError); return notices for suspicious but legal parts."""
    value = pattern.get("detail-type")
    if value is not None and not isinstance(value, list):
        raise UsageError('"detail-type" in an event pattern must be a list, e.g. ["IssueProcessed"]')
    unknown = sorted(set(named_types(pattern)) - known)
    if unknown:
        raise UsageError(
            f"unknown detail-type {', '.join(unknown)}: known types are {', '.join(sorted(known))}"
        )
    for item in value or []:
        prefix_filter = item.get("prefix") if isinstance(item, dict) else None
        if prefix_filter is not None and not any(t.startswith(str(prefix_filter)) for t in known):
            raise UsageError(f"detail-type prefix '{prefix_filter}' matches no known event type")
    notices = []
    sources = pattern.get("source")
    if isinstance(sources, list) and all(isinstance(s, str) for s in sources) and prefix not in sources:
        notices.append(f"notice: events on this bus have source '{prefix}'; this pattern's source never matches")
    return notices


def sample_event(detail_type: str, *, prefix: str, account: str, region: str,
                 schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A bus event as EventBridge delivers it, with a placeholder envelope as ``detail``."""
    stream = "account-123456789012" if detail_type.startswith("Account") else "issue-octo/repo#1"
    data = _placeholder(((schema or {}).get("properties") or {}).get("data") or {})
    detail = {
        "event_id": str(uuid.UUID(int=1)), "type": detail_type, "schema_version": 1,
        "stream": stream, "version": 1, "occurred_at": "2026-01-01T00:00:00.000Z",
        "correlation_id": "sample", "causation_id": None, "actor": "sample", "data": data,
    }
    return {
        "id": str(uuid.UUID(int=2)), "version": "0", "account": account, "source": prefix,
        "time": "2026-01-01T00:00:00Z", "region": region, "resources": [],
        "detail-type": detail_type, "detail": detail,
    }


def _placeholder(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {key: _placeholder(props.get(key) or {}) for key in schema.get("required", [])}
    return {"integer": 1, "number": 1, "boolean": False, "array": [], "null": None}.get(str(kind), "sample")


def add_statement(policy: str | None, statement: Mapping[str, Any]) -> str:
    """A resource policy (JSON text) with ``statement`` added, replacing one with the same Sid."""
    doc: dict[str, Any] = json.loads(policy) if policy else {"Version": "2012-10-17", "Statement": []}
    stmts = doc.get("Statement") or []
    stmts = [stmts] if isinstance(stmts, dict) else stmts
    doc["Statement"] = [s for s in stmts if s.get("Sid") != statement["Sid"]] + [dict(statement)]
    return json.dumps(doc, sort_keys=True)


def remove_statement(policy: str | None, sid: str) -> str | None:
    """The policy without the statement ``sid``; None when nothing is left (remove the policy)."""
    if not policy:
        return None
    doc = json.loads(policy)
    stmts = doc.get("Statement") or []
    stmts = [stmts] if isinstance(stmts, dict) else stmts
    doc["Statement"] = [s for s in stmts if s.get("Sid") != sid]
    return json.dumps(doc, sort_keys=True) if doc["Statement"] else None


def grant_statement(*, kind: str, sid: str, target_arn: str, rule_arn: str) -> dict[str, Any]:
    """Let EventBridge deliver from this one rule (aws:SourceArn) to an SQS queue or SNS topic."""
    action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish"}[kind]
    return {
        "Sid": sid, "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": action, "Resource": target_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


def target_kind(arn: str) -> str:
    """``sqs``, ``sns``, ``lambda`` or another service name, read from the ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise UsageError(f"--target must be an ARN (arn:aws:sqs:…, arn:aws:sns:…, arn:aws:lambda:…): {arn}")
    return parts[2]


def queue_name_from_arn(arn: str) -> tuple[str, str]:
    """(queue name, account) from ``arn:aws:sqs:region:account:name``."""
    parts = arn.split(":")
    return parts[5], parts[4]


# ---------------------------------------------------------------- shell


def add_subscribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="subscription name (rule <prefix>-sub-NAME)")
    parser.add_argument("--pattern", required=True, help="event pattern as JSON, or @file")
    parser.add_argument("--target", required=True, help="target ARN: SQS queue, SNS topic or Lambda")
    parser.add_argument("--input-path", default=None, help="JSONPath of the event to deliver, e.g. $.detail")


def add_unsubscribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="subscription name given to subscribe")


def add_subscriptions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def known_types() -> set[str]:
    """Event types that have a schema in ``schemas/``."""
    return set(schemas.event_types())


def _schema(detail_type: str) -> Mapping[str, Any] | None:
    try:
        return json.loads((schemas.SCHEMA_DIR / f"{detail_type}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def run_subscribe(args: argparse.Namespace) -> int:
    pattern = load_pattern(args.pattern)
    notices = check_pattern(pattern, known=known_types(), prefix=args.prefix)
    kind = target_kind(args.target)
    name = rule_name(args.prefix, args.name)
    events = aws.client(args, "events")
    bus = _bus(events, args.prefix)
    notices += _test_pattern(events, pattern, bus=bus, prefix=args.prefix)
    with aws.aws_errors("events:PutRule"):
        rule_arn = events.put_rule(
            Name=name, EventBusName=bus["Name"], EventPattern=json.dumps(pattern), State="ENABLED",
            Description=f"user subscription {args.name} (bootstrap.py subscribe)",
            Tags=[{"Key": OWNER_TAG, "Value": USER}, {"Key": "gip:subscription", "Value": args.name}],
        )["RuleArn"]
        events.tag_resource(ResourceARN=rule_arn, Tags=[{"Key": OWNER_TAG, "Value": USER}])
    target: dict[str, Any] = {"Id": "target", "Arn": args.target}
    if args.input_path:
        target["InputPath"] = args.input_path
    with aws.aws_errors("events:PutTargets"):
        failed = events.put_targets(Rule=name, EventBusName=bus["Name"], Targets=[target])
    if failed.get("FailedEntryCount"):
        raise GipError(f"could not add target: {failed['FailedEntries'][0].get('ErrorMessage')}")
    _grant(args, kind, sid=statement_id(args.name), target_arn=args.target, rule_arn=rule_arn)
    for notice in notices:
        print(notice, file=sys.stderr)
    print(f"subscribed {name} → {args.target}")
    return 0


def run_unsubscribe(args: argparse.Namespace) -> int:
    name = rule_name(args.prefix, args.name)
    removed = remove_subscription(args, name)
    print(f"unsubscribed {name} ({removed} target(s) removed)")
    return 0


def remove_subscription(args: Any, rule: str) -> int:
    """Revoke the policy statements, remove the targets, delete the rule; returns #targets.

    Also for ``destroy``: a custom bus cannot be deleted while rules remain on it.
    """
    events = aws.client(args, "events")
    bus = _bus(events, args.prefix)["Name"]
    sub_name = rule.removeprefix(f"{args.prefix}-sub-")
    try:
        targets = events.list_targets_by_rule(Rule=rule, EventBusName=bus).get("Targets", [])
    except botocore.exceptions.ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise NotFound(f"no subscription '{sub_name}' (rule {rule}) on bus {bus}") from exc
        raise GipError(aws.describe(exc, action="events:ListTargetsByRule")) from exc
    for target in targets:
        _revoke(args, target_kind(target["Arn"]), sid=statement_id(sub_name), target_arn=target["Arn"])
    with aws.aws_errors("events:DeleteRule"):
        if targets:
            events.remove_targets(Rule=rule, EventBusName=bus, Ids=[t["Id"] for t in targets])
        events.delete_rule(Name=rule, EventBusName=bus)
    return len(targets)


def list_rules(args: Any) -> list[dict[str, Any]]:
    """Every rule on ``<prefix>-bus``: rule, owner (``user`` for subscriptions), state, targets, pattern."""
    events = aws.client(args, "events")
    bus = _bus(events, args.prefix)["Name"]
    rows = []
    with aws.aws_errors("events:ListRules"):
        kwargs: dict[str, Any] = {"EventBusName": bus}
        while True:
            page = events.list_rules(**kwargs)
            for rule in page.get("Rules", []):
                tags = {t["Key"]: t["Value"] for t in events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])}
                targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus).get("Targets", [])
                rows.append({
                    "rule": rule["Name"], "owner": tags.get(OWNER_TAG, "ours"), "state": rule.get("State"),
                    "targets": ", ".join(t["Arn"] for t in targets),
                    "pattern": json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None,
                })
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    rows.sort(key=lambda r: (r["owner"] != USER, r["rule"]))
    return rows


def run_subscriptions(args: argparse.Namespace) -> int:
    rows = list_rules(args)
    if args.format == "json":
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    cols = [("RULE", "rule"), ("OWNER", "owner"), ("STATE", "state"), ("TARGETS", "targets"), ("PATTERN", "pattern")]
    for line in table(rows, cols, max_width={"pattern": 80}):
        print(line)
    return 0


def _bus(events: Any, prefix: str) -> dict[str, Any]:
    name = f"{prefix}-bus"
    try:
        return events.describe_event_bus(Name=name)  # type: ignore[no-any-return]
    except botocore.exceptions.ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise NotFound(f"event bus {name} not found: deploy first (or check --prefix/--region)") from exc
        raise GipError(aws.describe(exc, action="events:DescribeEventBus")) from exc


def _test_pattern(events: Any, pattern: Mapping[str, Any], *, bus: Mapping[str, Any], prefix: str) -> list[str]:
    """TestEventPattern against a sample of each named type; notices, or UsageError if invalid."""
    arn = str(bus.get("Arn", ""))
    parts = arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) > 4 else ("us-east-1", "123456789012")
    named = named_types(pattern)
    results: dict[str, bool] = {}
    for detail_type in named or sorted(known_types()):
        event = sample_event(detail_type, prefix=prefix, account=account, region=region, schema=_schema(detail_type))
        try:
            result = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))
        except botocore.exceptions.ClientError as exc:
            code = aws.error_code(exc)
            if code in ("InvalidEventPatternException", "ValidationException"):
                raise UsageError(f"EventBridge refuses the pattern: {exc.response['Error'].get('Message', code)}") from exc
            return [f"notice: pattern not tested (TestEventPattern unavailable: {code or exc})"]
        except (botocore.exceptions.BotoCoreError, NotImplementedError, ValueError, KeyError) as exc:
            return [f"notice: pattern not tested (TestEventPattern unavailable: {type(exc).__name__})"]
        if not isinstance(result, dict) or "Result" not in result:
            return ["notice: pattern not tested (TestEventPattern unavailable on this endpoint)"]
        results[detail_type] = bool(result["Result"])
    return pattern_notices(results, named=bool(named))


def pattern_notices(results: Mapping[str, bool], *, named: bool) -> list[str]:
    """Notices from TestEventPattern results per sample type (pure).

    With named types, each sample that misses is named; without, only "matches nothing".
    """
    misses = sorted(t for t, hit in results.items() if not hit)
    if named and misses:
        return [f"notice: a sample {', '.join(misses)} event does not match (fine if you filter on detail fields)"]
    if not named and results and len(misses) == len(results):
        return ["notice: the pattern matches no sample event of any type (fine if you filter on detail fields)"]
    return []


def _grant(args: argparse.Namespace, kind: str, *, sid: str, target_arn: str, rule_arn: str) -> None:
    if kind == "sqs":
        sqs = aws.client(args, "sqs")
        url = _queue_url(sqs, target_arn)
        with aws.aws_errors("sqs:SetQueueAttributes"):
            current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
            stmt = grant_statement(kind=kind, sid=sid, target_arn=target_arn, rule_arn=rule_arn)
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": add_statement(current, stmt)})
    elif kind == "sns":
        sns = aws.client(args, "sns")
        with aws.aws_errors("sns:SetTopicAttributes"):
            current = sns.get_topic_attributes(TopicArn=target_arn)["Attributes"].get("Policy")
            stmt = grant_statement(kind=kind, sid=sid, target_arn=target_arn, rule_arn=rule_arn)
            sns.set_topic_attributes(TopicArn=target_arn, AttributeName="Policy", AttributeValue=add_statement(current, stmt))
    elif kind == "lambda":
        lam = aws.client(args, "lambda")
        with aws.aws_errors("lambda:AddPermission"):
            _remove_lambda_permission(lam, target_arn, sid)
            lam.add_permission(FunctionName=target_arn, StatementId=sid, Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=rule_arn)
    else:
        print(f"notice: no resource policy granted for a {kind} target; grant EventBridge access yourself",
              file=sys.stderr)


def _revoke(args: argparse.Namespace, kind: str, *, sid: str, target_arn: str) -> None:
    try:
        if kind == "sqs":
            sqs = aws.client(args, "sqs")
            url = _queue_url(sqs, target_arn)
            current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": remove_statement(current, sid) or ""})
        elif kind == "sns":
            sns = aws.client(args, "sns")
            current = sns.get_topic_attributes(TopicArn=target_arn)["Attributes"].get("Policy")
            sns.set_topic_attributes(TopicArn=target_arn, AttributeName="Policy",
                                     AttributeValue=remove_statement(current, sid) or json.dumps({"Version": "2012-10-17", "Statement": []}))
        elif kind == "lambda":
            _remove_lambda_permission(aws.client(args, "lambda"), target_arn, sid)
    except (GipError, botocore.exceptions.ClientError) as exc:
        # The target may be gone already; the rule must still go.
        print(f"notice: could not remove policy statement {sid} from {target_arn}: {exc}", file=sys.stderr)


def _remove_lambda_permission(lam: Any, function_arn: str, sid: str) -> None:
    try:
        lam.remove_permission(FunctionName=function_arn, StatementId=sid)
    except botocore.exceptions.ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise


def _queue_url(sqs: Any, arn: str) -> str:
    name, account = queue_name_from_arn(arn)
    try:
        return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
    except botocore.exceptions.ClientError as exc:
        raise NotFound(f"target queue {arn} not found") from exc
