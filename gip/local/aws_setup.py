"""Bring the embedded AWS up: deploy the same templates, stop moto's own Lambda runtime,
create the Organization, and read back the wiring local mode has to play.

Order matters, and each step says why:

1. ``gip.cli.deploy.deploy(local=True)``: the same change sets as in AWS (moto's gaps are filled
   by ``gip.local.gaps``).
2. Read what the runtime must play, *while moto's Lambda API still answers from its real
   backend*: functions (handler, environment, timeout), event source mappings, schedule
   rules and their targets, and the worker's ECS task environment.
3. Disable every event source mapping (``UpdateEventSourceMapping(Enabled=False)``), then
   turn moto's Lambda Docker off (``POST /moto-api/config``). The order is forced: once Docker
   is off, moto answers the Lambda API from an empty "simple" backend, so the mappings could
   no longer be found, and an enabled SQS mapping would let moto consume messages with a stub.
4. moto's DynamoDB table invokes its stream mappings on every write *even when disabled*,
   then drops the shard's records (or fails the write with a 500 once Docker is off). The
   embedded server runs in this process, so the disabled mappings are detached from the
   tables' in-memory list: moto then keeps the stream for our poller, as AWS does.
5. The Organization, its pool OU ``<prefix>-pool`` carrying the ``<prefix>-guardrails`` SCP
   (the same document a real deploy attaches; moto stores it but does not enforce it), and
   ``--accounts`` member accounts in that OU, each with the processing role the member StackSet
   would create (moto cannot run the StackSet's SNS-backed registration). They are registered
   by the reconcile Lambda (``gip.services.reconcile``) on its schedule, the path a real account takes.
   Member ``n`` has the same id on every start (``gip.local.account_ids``), so a restored log's
   accounts are still the Organization's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from gip.cli import guardrails
from gip.errors import AwsError, GipError
from gip.local import account_ids
from gip.local.lambdas import Function, from_configuration

log = logging.getLogger(__name__)

RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class SourceMapping:
    """One event source mapping the runtime plays instead of moto."""

    uuid: str
    function: Function
    source_arn: str
    batch_size: int
    max_retries: int = -1  # MaximumRetryAttempts (-1: until the record expires, Lambda's default)
    on_failure_arn: str = ""  # DestinationConfig.OnFailure.Destination
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency (SQS)

    @property
    def kind(self) -> str:
        return self.source_arn.split(":")[2]  # "sqs" | "dynamodb"


@dataclass(frozen=True)
class Schedule:
    """A schedule rule: its period in AWS, and where it delivers."""

    rule_name: str
    rule_arn: str
    rate_s: int
    target_arns: tuple[str, ...]


@dataclass
class Wiring:
    """Everything read back from the deployed stack."""

    account: str
    region: str
    outputs: dict[str, str]
    functions: dict[str, Function] = field(default_factory=dict)  # by ARN
    mappings: list[SourceMapping] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)


def rate_seconds(expression: str) -> int | None:
    """Pure: ``rate(15 minutes)`` → 900; None for anything else (cron is not played)."""
    m = RATE.match(expression.strip())
    if not m:
        return None
    return int(m[1]) * UNIT_SECONDS[m[2].rstrip("s")]


def read_wiring(client: Callable[[str], Any], *, outputs: dict[str, str], account: str,
                region: str) -> Wiring:
    """Step 2: functions, mappings, schedules and the worker's task environment."""
    lam, events = client("lambda"), client("events")
    wiring = Wiring(account=account, region=region, outputs=outputs)
    for page in lam.get_paginator("list_functions").paginate():
        for config in page["Functions"]:
            function = from_configuration(config)
            wiring.functions[function.arn] = function
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        for m in page["EventSourceMappings"]:
            target = wiring.functions.get(m["FunctionArn"])
            if target is None:
                raise AwsError(f"event source mapping {m['UUID']} names an unknown function")
            destination = ((m.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", "")
            retries = m.get("MaximumRetryAttempts")
            wiring.mappings.append(SourceMapping(m["UUID"], target, m["EventSourceArn"], int(m.get("BatchSize") or 10),
                                                 -1 if retries is None else int(retries), destination,
                                                 (m.get("ScalingConfig") or {}).get("MaximumConcurrency")))
    for rule in events.list_rules()["Rules"]:  # schedules live on the default bus
        rate = rate_seconds(rule.get("ScheduleExpression", ""))
        if rate is None:
            continue
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        wiring.schedules.append(Schedule(rule["Name"], rule["Arn"], rate,
                                         tuple(t["Arn"] for t in targets)))
    wiring.worker_env = _task_environment(client("ecs"), outputs)
    return wiring


def _task_environment(ecs: Any, outputs: dict[str, str]) -> dict[str, str]:
    """The worker container's environment from the ECS service's task definition."""
    service = ecs.describe_services(cluster=outputs["ClusterName"],
                                    services=[outputs["ServiceName"]])["services"]
    if not service:
        raise AwsError(f"ECS service {outputs['ServiceName']} not found after the deploy")
    task = ecs.describe_task_definition(taskDefinition=service[0]["taskDefinition"])["taskDefinition"]
    container = task["containerDefinitions"][0]
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def stop_moto_lambda(lam: Any, endpoint: str, mappings: list[SourceMapping]) -> None:
    """Steps 3 and 4: moto must not run our functions itself; the runtime plays them."""
    for mapping in mappings:
        lam.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    states = {m["UUID"]: m["State"] for m in lam.list_event_source_mappings()["EventSourceMappings"]}
    still = [uuid for uuid in (m.uuid for m in mappings) if states.get(uuid) != "Disabled"]
    if still:
        raise AwsError(f"moto kept {len(still)} event source mapping(s) enabled")
    try:
        answer = requests.post(f"{endpoint}/moto-api/config", json={"lambda": {"use_docker": False}},
                               timeout=10)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise AwsError(f"could not turn moto's Lambda Docker off: {exc}") from exc
    detach_disabled_stream_mappings()


def check_queue_keeps_messages(sqs: Any, queue_url: str) -> None:
    """Send a probe to a mapped queue and make sure moto left it there (moto runs an enabled
    mapping inside SendMessage), then take it back out."""
    sqs.send_message(QueueUrl=queue_url, MessageBody='{"probe": "local mode"}')
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    probes = [m for m in got if m.get("Body") == '{"probe": "local mode"}']
    for message in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    if not probes:
        raise AwsError(f"moto still consumes messages sent to {queue_url.rsplit('/', 1)[-1]}")


def detach_disabled_stream_mappings() -> int:
    """moto invokes a table's stream mappings on every write whatever their state; keep only
    the enabled ones (none, here). Needs the moto server in this process (EmbeddedAws)."""
    from moto.dynamodb.models import dynamodb_backends

    detached = 0
    for regions in dynamodb_backends.values():
        for backend in regions.values():
            for table in backend.tables.values():
                kept = {arn: esm for arn, esm in table.lambda_event_source_mappings.items() if esm.enabled}
                detached += len(table.lambda_event_source_mappings) - len(kept)
                table.lambda_event_source_mappings = kept
    return detached


def processing_trust_policy(*, worker_role_arn: str, external_id: str, org_id: str) -> str:
    """Pure: the member role's trust policy, as templates/member-account.yaml writes it."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "WorkerAssume", "Effect": "Allow", "Principal": {"AWS": worker_role_arn},
         "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": external_id, "aws:PrincipalOrgID": org_id}}},
        {"Sid": "WorkerTagSession", "Effect": "Allow", "Principal": {"AWS": worker_role_arn},
         "Action": "sts:TagSession", "Condition": {"StringEquals": {"aws:PrincipalOrgID": org_id}}},
    ]})


def create_organization(client: Callable[[str], Any], *, accounts: int, prefix: str,
                        member_client: Callable[[str, str], Any], trust_policy: str,
                        role_name: str) -> list[str]:
    """Step 5: the Organization, the guarded pool OU, ``accounts`` members in it, and the
    processing role in each."""
    orgs = client("organizations")
    with contextlib.suppress(orgs.exceptions.AlreadyInOrganizationException):
        orgs.create_organization(FeatureSet="ALL")
    root = orgs.list_roots()["Roots"][0]["Id"]
    pool_ou = ensure_pool_ou(orgs, root=root, name=f"{prefix}-pool")
    sts = client("sts")  # Organizations is global: its client's region is not the deployment's
    region, management = sts.meta.region_name, sts.get_caller_identity()["Account"]
    guardrails.ensure(orgs, prefix=prefix, choice=guardrails.Choice("ours"), ou_ids=[pool_ou], regions=[region],
                      topic_arn=f"arn:aws:sns:{region}:{management}:{prefix}-registrar",
                      notice=log.warning, info=log.info)
    existing = {a["Name"]: a["Id"] for page in orgs.get_paginator("list_accounts").paginate()
                for a in page["Accounts"] if a.get("Status") == "ACTIVE"}
    members = []
    for n in range(1, accounts + 1):
        name = account_ids.member_name(prefix, n)
        if name in existing:  # a restart against the same endpoint: the member is there already
            members.append(existing[name])
            continue
        with account_ids.fixed_account_id(account_ids.member_id(prefix, n)):  # the same id on every start
            status = orgs.create_account(AccountName=name, Email=f"sandbox-{n}@example.com")["CreateAccountStatus"]
        if status.get("State") == "FAILED":
            raise GipError(f"creating member account {n} failed: {status.get('FailureReason')}")
        account_id = status["AccountId"]
        orgs.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=pool_ou)
        iam = member_client(account_id, "iam")
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust_policy,
                        Description="Assumed by the github-issue-processor worker (local mode)")
        members.append(account_id)
    return members


def ensure_pool_ou(orgs: Any, *, root: str, name: str) -> str:
    """The pool OU under the root, created once (a restart against the same endpoint reuses it)."""
    for page in orgs.get_paginator("list_organizational_units_for_parent").paginate(ParentId=root):
        for ou in page["OrganizationalUnits"]:
            if ou["Name"] == name:
                return str(ou["Id"])
    return str(orgs.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"])
