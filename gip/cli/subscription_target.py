"""A subscription's target: check that it exists, grant EventBridge delivery on it, revoke that.

The grant is one resource-policy statement (SQS queue policy, SNS topic policy) or one Lambda
permission, with Sid ``gip-sub-NAME``, conditioned on the rule's ARN. Other statements on the
target are kept. The policy edits are pure functions over the policy text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

import botocore.exceptions

from gip.adapters import aws
from gip.errors import GipError, NotFound, UsageError

# ---------------------------------------------------------------- pure


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


def check_target(args: argparse.Namespace, arn: str) -> str:
    """The target's kind, once it is known to exist (NotFound otherwise); nothing is changed.

    Kinds other than sqs, sns and lambda cannot be checked here: a notice says so.
    """
    kind = target_kind(arn)
    try:
        if kind == "sqs":
            _queue_url(aws.client(args, "sqs"), arn)
        elif kind == "sns":
            aws.client(args, "sns").get_topic_attributes(TopicArn=arn)
        elif kind == "lambda":
            aws.client(args, "lambda").get_function(FunctionName=arn)
        else:
            print(f"notice: cannot check that the {kind} target {arn} exists", file=sys.stderr)
    except botocore.exceptions.ClientError as exc:
        if aws.error_code(exc) in ("NotFound", "NotFoundException", "ResourceNotFoundException"):
            raise NotFound(f"target {arn} not found: create it first (or check the ARN)") from exc
        raise GipError(aws.describe(exc, action=f"{kind}: check the target")) from exc
    return kind


def grant(args: argparse.Namespace, kind: str, *, sid: str, target_arn: str, rule_arn: str) -> None:
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


def revoke(args: argparse.Namespace, kind: str, *, sid: str, target_arn: str) -> None:
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
        raise NotFound(f"target {arn} not found: create it first (or check the ARN)") from exc
