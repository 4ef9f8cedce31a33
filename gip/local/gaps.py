"""Local mode only: create through the API what moto's CloudFormation silently skips.

moto accepts every resource type, creates the ones it knows and reports the stack
CREATE_COMPLETE anyway (DESIGN.md, "moto notes"). It also loses the Outputs of a stack
created through a change set. After the stack settles, :func:`fill` compares the template
with the stack's resources, resolves the skipped resources' properties with a small
intrinsic-function evaluator (Ref, GetAtt, Sub, Join, If, Select, ...) and calls the
matching API, printing one line per resource; :func:`resolve_outputs` evaluates Outputs.

Never used against real AWS, where CloudFormation creates everything itself.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gip.adapters.aws import aws_errors, error_code

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

NOVALUE = object()


def quiet_moto() -> None:
    """Silence moto's own "not supported" log lines and warnings: our one-line notices say
    the same thing, and what was done about it (affects an in-process moto server only)."""
    import logging
    import warnings

    class _Unsupported(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("No Moto CloudFormation support")

    moto_log = logging.getLogger("moto")  # moto's CloudFormation parser logs here
    if not any(type(f).__name__ == "_Unsupported" for f in moto_log.filters):
        moto_log.addFilter(_Unsupported())
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)


def load_template(text: str) -> dict[str, Any]:
    """Parse a CloudFormation YAML template, short-form tags included (needs PyYAML)."""
    import yaml  # local mode brings moto[server], which brings PyYAML

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml's parser when built
        pass

    def construct(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
        key = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag_suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    Loader.add_multi_constructor("!", construct)
    return dict(yaml.load(text, Loader=Loader))


class Unresolvable(Exception):
    """An intrinsic this evaluator cannot resolve locally."""


class Resolver:
    """Evaluates intrinsic functions against a deployed (moto) stack."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        parameters: dict[str, str],
        physical: dict[str, str],
        region: str,
        account: str,
        stack_name: str,
        attribute: Callable[[str, str, str, dict[str, Any]], str],
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.physical = dict(physical)
        self.attribute = attribute
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default", ""))
            self.params[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        self.params.update({
            "AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack_name, "AWS::NoValue": NOVALUE,
        })
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if self.physical.get(name):
            return self.physical[name]
        raise Unresolvable(f"Ref {name}")

    def get_att(self, logical_id: str, attr: str) -> str:
        spec = self.resources[logical_id]
        props = {k: v for k, v in self.value(spec.get("Properties", {})).items()}
        return self.attribute(spec["Type"], attr, self.physical.get(logical_id, ""), props)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attr)
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), extra), text)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.value(arg[1]))
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if key == "Fn::GetAZs":
                region = self.params["AWS::Region"]
                return [f"{region}a", f"{region}b", f"{region}c"]
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise Unresolvable(key)
        out = {}
        for k, v in node.items():
            resolved = self.value(v)
            if resolved is not NOVALUE:
                out[k] = resolved
        return out

    def _sub(self, expr: str, extra: dict[str, Any]) -> str:
        if expr in extra:
            return str(extra[expr])
        if "." in expr and expr not in self.params:
            logical, attr = expr.split(".", 1)
            return self.get_att(logical, attr)
        return str(self.ref(expr))


def aws_attribute(clients: Callable[[str], Any], region: str, account: str) -> Callable[..., str]:
    """GetAtt for the resource types our templates use, from physical ids and API calls."""

    def attribute(rtype: str, attr: str, physical: str, props: dict[str, Any]) -> str:
        if rtype == "AWS::SQS::Queue":
            name = physical.rstrip("/").rsplit("/", 1)[-1]
            return name if attr == "QueueName" else f"arn:aws:sqs:{region}:{account}:{name}"
        if rtype == "AWS::Events::EventBus":
            name = props.get("Name", physical)
            return name if attr == "Name" else f"arn:aws:events:{region}:{account}:event-bus/{name}"
        if rtype == "AWS::Events::Rule" and attr == "Arn":
            bus = props.get("EventBusName", "default")
            return str(clients("events").describe_rule(Name=physical, EventBusName=bus)["Arn"])
        if rtype == "AWS::DynamoDB::Table":
            table = clients("dynamodb").describe_table(TableName=physical)["Table"]
            return str(table["LatestStreamArn"] if attr == "StreamArn" else table["TableArn"])
        if rtype == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{physical}"
        if rtype == "AWS::Lambda::Function" and attr == "Arn":
            return f"arn:aws:lambda:{region}:{account}:function:{physical}"
        if rtype == "AWS::IAM::Role" and attr == "Arn":
            return str(clients("iam").get_role(RoleName=physical)["Role"]["Arn"])
        if rtype == "AWS::ECS::Service" and attr == "Name":
            return physical.rsplit("/", 1)[-1]
        raise Unresolvable(f"GetAtt {rtype}.{attr}")

    return attribute


# --------------------------------------------------------------------------- creators
# Each takes (clients, resolved properties) and returns the physical id (what Ref gives).

def _secret(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    sm = clients("secretsmanager")
    try:
        return str(sm.describe_secret(SecretId=props["Name"])["ARN"])
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    value = props.get("SecretString")
    if value is None:
        length = int(props.get("GenerateSecretString", {}).get("PasswordLength", 32))
        value = secrets.token_urlsafe(length)[:length]
    created = sm.create_secret(Name=props["Name"], Description=props.get("Description", ""),
                               SecretString=value)
    return str(created["ARN"])


def _queue_policy(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    for url in props["Queues"]:
        clients("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return ""


def _topic_policy(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    for arn in props["Topics"]:
        clients("sns").set_topic_attributes(TopicArn=arn, AttributeName="Policy",
                                            AttributeValue=json.dumps(props["PolicyDocument"]))
    return ""


def _scalable_target(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    clients("application-autoscaling").register_scalable_target(**props)
    return str(props["ResourceId"])


def _scaling_policy(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    return str(clients("application-autoscaling").put_scaling_policy(**props)["PolicyARN"])


def _alarm(clients: Callable[[str], Any], props: dict[str, Any]) -> str:
    clients("cloudwatch").put_metric_alarm(**props)
    return str(props["AlarmName"])


CREATORS: dict[str, tuple[int, Callable[[Callable[[str], Any], dict[str, Any]], str]]] = {
    "AWS::SecretsManager::Secret": (0, _secret),
    "AWS::SQS::QueuePolicy": (1, _queue_policy),
    "AWS::SNS::TopicPolicy": (1, _topic_policy),
    "AWS::ApplicationAutoScaling::ScalableTarget": (2, _scalable_target),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (3, _scaling_policy),
    "AWS::CloudWatch::Alarm": (4, _alarm),
}
NOT_SIMULATED = {
    # moto enforces bucket policies, and its endpoint is plain HTTP: TLS-only would deny all.
    "AWS::S3::BucketPolicy": "the TLS-only policy would deny moto's plain-HTTP endpoint",
    "AWS::EventSchemas::Registry": "moto has no EventSchemas API; schemas/ stay local files",
}


def skipped(resolver: Resolver) -> list[str]:
    """Logical ids the template asks for (condition true) that the stack does not hold."""
    return [lid for lid in resolver.resources
            if resolver.active(lid) and not resolver.physical.get(lid)
            and resolver.resources[lid]["Type"] not in SILENT_PHYSICAL]


# Types moto creates but reports with an empty physical id (not skipped).
SILENT_PHYSICAL = {"AWS::Events::EventBus", "AWS::Events::Archive", "AWS::Lambda::Permission",
                   "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Method"}


def fill(
    resolver: Resolver,
    clients: Callable[[str], Any],
    notice: Callable[[str], None],
    *,
    present: set[str],
    create: bool = True,
) -> dict[str, str]:
    """Create every skipped resource we know how to; returns logical id -> physical id.

    ``present`` is the set of logical ids the stack reports (moto lists skipped ones with an
    empty id). With ``create=False`` only secrets are looked up (for the Outputs).
    """
    todo = [lid for lid in resolver.resources
            if resolver.active(lid) and lid not in present]
    todo.sort(key=lambda lid: CREATORS.get(resolver.resources[lid]["Type"], (9, None))[0])
    made: dict[str, str] = {}
    for lid in todo:
        rtype = resolver.resources[lid]["Type"]
        if rtype not in CREATORS:
            if create:
                why = NOT_SIMULATED.get(rtype, "not simulated in local mode")
                notice(f"local: skipped {lid} ({rtype}): {why}")
            continue
        if not create and rtype != "AWS::SecretsManager::Secret":
            continue
        try:
            props = resolver.value(resolver.resources[lid].get("Properties", {}))
            with aws_errors(f"local create {lid}"):
                physical = CREATORS[rtype][1](clients, props)
        except Unresolvable as exc:
            notice(f"local: skipped {lid} ({rtype}): cannot resolve {exc}")
            continue
        resolver.physical[lid] = physical
        made[lid] = physical
        if create:
            notice(f"local: moto skipped {lid} ({rtype}); created it through the API")
    return made


def _public_access_block(clients: Callable[[str], Any], physical: str, value: Any) -> None:
    clients("s3").put_public_access_block(Bucket=physical, PublicAccessBlockConfiguration=value)


# Properties moto's CloudFormation accepts but drops: (type, property) -> apply through the API.
PROPERTY_PATCHES: dict[tuple[str, str], Callable[[Callable[[str], Any], str, Any], None]] = {
    ("AWS::S3::Bucket", "PublicAccessBlockConfiguration"): _public_access_block,
}


def patch_properties(
    resolver: Resolver, clients: Callable[[str], Any], notice: Callable[[str], None]
) -> None:
    """Apply the properties moto drops on resources it did create (one line each)."""
    for lid, spec in resolver.resources.items():
        for (rtype, prop), patch in PROPERTY_PATCHES.items():
            if spec["Type"] != rtype or prop not in spec.get("Properties", {}) or not resolver.physical.get(lid):
                continue
            with aws_errors(f"local patch {lid}.{prop}"):
                patch(clients, resolver.physical[lid], resolver.value(spec["Properties"][prop]))
            notice(f"local: moto dropped {lid}.{prop}; applied it through the API")


def resolve_outputs(resolver: Resolver) -> dict[str, str]:
    """Evaluate the template's Outputs (moto drops them for change-set-created stacks)."""
    out: dict[str, str] = {}
    for key, spec in resolver.template.get("Outputs", {}).items():
        if "Condition" in spec and not resolver.condition(spec["Condition"]):
            continue
        try:
            out[key] = str(resolver.value(spec["Value"]))
        except Unresolvable:
            continue
    return out


# --------------------------------------------------------------------------- deploy steps

def after_deploy(
    client: Callable[[str], Any], plan: Any, template_file: str,
    params: dict[str, dict[str, str]], region: str, account: str, notice: Callable[[str], None],
) -> dict[str, str]:
    """After a stack settles on moto: create what it skipped, patch what it dropped, and
    return the Outputs evaluated from the template."""
    resolver, present = local_resolver(client, stack_name=plan.stack_name, template_file=template_file,
                                       parameters=params[template_file], region=region, account=account)
    executed = not plan.no_changes
    fill(resolver, client, notice, present=present, create=executed)
    if executed:
        patch_properties(resolver, client, notice)
    return resolve_outputs(resolver)


def local_resolver(
    client: Callable[[str], Any], *, stack_name: str, template_file: str,
    parameters: dict[str, str], region: str, account: str,
) -> tuple[Resolver, set[str]]:
    """A template resolver bound to the stack's resources, and the logical ids the stack
    reports (moto lists the types it skipped without one)."""
    from gip.cli.stacks import resources

    template = load_template((TEMPLATES / template_file).read_text())
    listed = resources(client("cloudformation"), stack_name)
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in listed if r["LogicalResourceId"]}
    resolver = Resolver(
        template, parameters=parameters, physical=physical, region=region, account=account,
        stack_name=stack_name, attribute=aws_attribute(client, region, account),
    )
    return resolver, set(physical)


def default_vpc(ec2: Any, notice: Callable[[str], None]) -> tuple[str, list[str]]:
    """The endpoint's default VPC and two of its subnets, for the worker (moto deletes a
    stack's VPC before its subnets, so a created one could not be destroyed)."""
    with aws_errors("ec2:DescribeVpcs"):
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            return "", []
        vpc = vpcs[0]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    notice(f"local: worker placed in the default VPC {vpc} instead of a new one")
    return vpc, sorted(s["SubnetId"] for s in subnets)[:2]
