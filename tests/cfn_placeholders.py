"""Resolve a template offline: every Ref/GetAtt/Sub/Join becomes a placeholder of the right shape.

Static checks (IAM lint, create-vs-update properties) need concrete values where CloudFormation
would put ARNs, names and URLs. The evaluator is ``gip.local.gaps.Resolver``; this module only
supplies what a real stack would: physical ids per resource type, attribute values shaped like
AWS's, and parameter values shaped by the parameter's role.
"""

from __future__ import annotations

import contextlib
from typing import Any

from gip.local.gaps import Resolver, Unresolvable

REGION, ACCOUNT, MEMBER = "us-east-1", "123456789012", "210987654321"
ROLE_ID = "AROAEXAMPLEROLEID1234"  # IAM unique ids: AROA + 17 upper-case alphanumerics

# Parameters whose value must look like an ARN (or id) for the policies built from them.
SHAPED_PARAMETERS = {
    "OrgId": "o-abcdefghij",
    "WorkerTaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/gip-worker",
    "WorkerTaskRoleId": ROLE_ID,
    "OrgEventsRoleArn": f"arn:aws:iam::{ACCOUNT}:role/gip-OrgEventsRole-ABC",
    "ReconcileRoleArn": f"arn:aws:iam::{ACCOUNT}:role/gip-ReconcileRole-ABC",
    "RegistrarTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:gip-registrar",
    "ArtifactsBucket": f"gip-artifacts-{ACCOUNT}-{REGION}",
    "LambdaCodeKey": "artifacts/lambda-0123abcd.zip",
    "WorkerBundleKey": "artifacts/worker-0123abcd.zip",
}


def _name(resource_type: str, props: dict[str, Any], logical_id: str) -> str:
    for key in ("TableName", "QueueName", "BucketName", "TopicName", "FunctionName", "RoleName",
                "Name", "ClusterName", "ServiceName", "ArchiveName", "LogGroupName", "AlarmName"):
        if isinstance(props.get(key), str):
            return str(props[key])
    return f"gip-{logical_id}-ABCDEF"


def physical_id(resource_type: str, name: str) -> str:
    """What ``Ref`` returns for a resource of this type (the CloudFormation docs' Return values)."""
    service = resource_type.split("::")[1].lower()
    if resource_type == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    if resource_type == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    if resource_type == "AWS::SecretsManager::Secret":
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
    if resource_type == "AWS::KMS::Key":
        return "1234abcd-12ab-34cd-56ef-1234567890ab"
    if service in ("apigateway",):
        return "a1b2c3d4e5"
    return name


def attribute(resource_type: str, attr: str, physical: str, props: dict[str, Any]) -> str:
    """``Fn::GetAtt`` values shaped as AWS returns them."""
    name = physical.rsplit("/", 1)[-1] if resource_type == "AWS::SQS::Queue" else physical
    arns = {
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}",
        "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
        "AWS::SNS::Topic": name,
        "AWS::ECS::Service": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/gip-cluster/{name}",
    }
    if attr == "Arn" and resource_type in arns:
        return arns[resource_type]
    special = {
        ("AWS::DynamoDB::Table", "StreamArn"): f"{arns['AWS::DynamoDB::Table']}/stream/2026-01-01T00:00:00.000",
        ("AWS::SQS::Queue", "QueueName"): name,
        ("AWS::SQS::Queue", "QueueUrl"): physical,
        ("AWS::Events::EventBus", "Name"): name,
        ("AWS::IAM::Role", "RoleId"): ROLE_ID,
        ("AWS::ECS::Service", "Name"): name,
        ("AWS::SNS::Topic", "TopicArn"): name,
        ("AWS::ApiGateway::RestApi", "RootResourceId"): "abc123root",
    }
    if (resource_type, attr) in special:
        return special[(resource_type, attr)]
    raise KeyError(f"no placeholder for {resource_type}.{attr}: add one to tests/cfn_placeholders.py")


def resolver(template: dict[str, Any], parameters: dict[str, str] | None = None) -> Resolver:
    """A resolver over ``template`` with placeholder physical ids and parameter values."""
    params = {k: v.get("Default", SHAPED_PARAMETERS.get(k, f"placeholder-{k.lower()}"))
              for k, v in template.get("Parameters", {}).items()}
    params.update({k: v for k, v in SHAPED_PARAMETERS.items() if k in params})
    params["Prefix"] = "gip"
    params.update(parameters or {})
    params = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in params.items()}
    physical: dict[str, str] = {}
    res = Resolver(template, parameters=params, physical=physical, region=REGION, account=ACCOUNT,
                   stack_name="gip", attribute=attribute)
    # Names may refer to parameters (!Sub "${Prefix}-..."): resolve them once params are known.
    for logical_id, spec in template.get("Resources", {}).items():
        props = spec.get("Properties", {})
        named = {}
        for key, value in props.items():
            if key.endswith("Name"):
                # A name made of another resource's (FunctionName: !Ref F) is not this one's.
                with contextlib.suppress(Unresolvable, KeyError):
                    named[key] = res.value(value)
        physical[logical_id] = physical_id(spec["Type"], _name(spec["Type"], named, logical_id))
    res.physical = physical
    return res
