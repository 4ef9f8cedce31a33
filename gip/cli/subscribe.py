"""``subscribe`` / ``unsubscribe`` / ``subscriptions``: user rules on our event bus.

A subscription is one EventBridge rule ``<prefix>-sub-NAME`` on ``<prefix>-bus`` with one
target, tagged ``gip:owner=user`` so deploys and ``destroy`` leave it alone. Subscribing:

1. reads the pattern (JSON text or ``@file``) and checks every ``detail-type`` it names
   against ``schemas/`` (pure: :func:`check_pattern`);
2. asks EventBridge ``TestEventPattern`` whether a sample event of each named type matches
   (skipped with a notice where the API is missing, as on moto);
3. checks that the target exists and that no subscription of that name does;
4. puts the rule and the target, then grants delivery on the target
   (:mod:`gip.cli.subscription_target`). If any step fails, what was created is removed, so a
   failed ``subscribe`` leaves the subscriptions as they were. ``unsubscribe`` removes it all.
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

from gip.adapters import aws
from gip.cli.render import add_format, structured, table
from gip.cli.subscription_target import check_target, grant, revoke, target_kind
from gip.domain import schemas
from gip.errors import GipError, NotFound, UsageError

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


# ---------------------------------------------------------------- shell


def add_subscribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="subscription name (rule <prefix>-sub-NAME)")
    parser.add_argument("--pattern", required=True, help="event pattern as JSON, or @file")
    parser.add_argument("--target", required=True, help="target ARN: SQS queue, SNS topic or Lambda")
    parser.add_argument("--input-path", default=None, help="JSONPath of the event to deliver, e.g. $.detail")


def add_unsubscribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="subscription name given to subscribe")


def add_subscriptions_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser)


def known_types() -> set[str]:
    """Event types that have a schema in ``schemas/``."""
    return set(schemas.event_types())


def _schema(detail_type: str) -> Mapping[str, Any] | None:
    try:
        return json.loads((schemas.SCHEMA_DIR / f"{detail_type}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def run_subscribe(args: argparse.Namespace) -> int:
    """Check everything first; then create, and on any failure remove what was created."""
    pattern = load_pattern(args.pattern)
    notices = check_pattern(pattern, known=known_types(), prefix=args.prefix)
    target_kind(args.target)  # the ARN's shape, before any call
    name = rule_name(args.prefix, args.name)
    events = aws.client(args, "events")
    bus_info = _bus(events, args.prefix)
    bus = bus_info["Name"]
    notices += _test_pattern(events, pattern, bus=bus_info, prefix=args.prefix)
    kind = check_target(args, args.target)
    _refuse_existing(events, name, bus=bus, sub_name=args.name)
    done: list[str] = []
    try:
        _create(args, events, pattern, name=name, bus=bus, kind=kind, done=done)
    except BaseException:
        _undo(args, events, done, name=name, bus=bus, kind=kind)
        raise
    for notice in notices:
        print(notice, file=sys.stderr)
    print(f"subscribed {name} → {args.target}")
    return 0


def _refuse_existing(events: Any, rule: str, *, bus: str, sub_name: str) -> None:
    # Replacing a rule in place could not be undone on failure: refuse, and keep it as it is.
    try:
        events.describe_rule(Name=rule, EventBusName=bus)
    except botocore.exceptions.ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return
        raise GipError(aws.describe(exc, action="events:DescribeRule")) from exc
    raise GipError(f"subscription '{sub_name}' already exists (rule {rule}): unsubscribe it first")


def _create(args: argparse.Namespace, events: Any, pattern: Mapping[str, Any], *, name: str,
            bus: str, kind: str, done: list[str]) -> None:
    """Rule, target, grant; each step is noted in ``done`` before its call (a timeout may
    still have created it), so that :func:`_undo` knows what to remove."""
    with aws.aws_errors("events:PutRule"):
        done.append("rule")
        rule_arn = events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED",
            Description=f"user subscription {args.name} (bootstrap.py subscribe)",
            Tags=[{"Key": OWNER_TAG, "Value": USER}, {"Key": "gip:subscription", "Value": args.name}],
        )["RuleArn"]
        events.tag_resource(ResourceARN=rule_arn, Tags=[{"Key": OWNER_TAG, "Value": USER}])
    target: dict[str, Any] = {"Id": "target", "Arn": args.target}
    if args.input_path:
        target["InputPath"] = args.input_path
    with aws.aws_errors("events:PutTargets"):
        done.append("target")
        failed = events.put_targets(Rule=name, EventBusName=bus, Targets=[target])
    if failed.get("FailedEntryCount"):
        raise GipError(f"could not add target: {failed['FailedEntries'][0].get('ErrorMessage')}")
    done.append("grant")
    grant(args, kind, sid=statement_id(args.name), target_arn=args.target, rule_arn=rule_arn)


def _undo(args: argparse.Namespace, events: Any, done: list[str], *, name: str, bus: str,
          kind: str) -> None:
    """Remove what a failed subscribe created, newest first; a step that fails says so."""
    steps = {
        "grant": lambda: revoke(args, kind, sid=statement_id(args.name), target_arn=args.target),
        "target": lambda: events.remove_targets(Rule=name, EventBusName=bus, Ids=["target"]),
        "rule": lambda: events.delete_rule(Name=name, EventBusName=bus),
    }
    for step in reversed(done):
        try:
            steps[step]()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                print(f"notice: could not remove the {step} of {name}: {aws.describe(exc)}",
                      file=sys.stderr)


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
        revoke(args, target_kind(target["Arn"]), sid=statement_id(sub_name), target_arn=target["Arn"])
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
    if args.format != "table":
        print("\n".join(structured(args.format, rows, rows)))
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


