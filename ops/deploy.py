"""``bootstrap.py --org o-xxx``: deploy everything with plain boto3 and CloudFormation.

Pipeline (build, plan, execute):

1. check the options (org id, prefix, labels) and the credentials (sts:GetCallerIdentity);
2. build the Lambda and worker bundles (deterministic zips) and upload them to the
   artifacts bucket under content-hash keys (an unchanged build uploads nothing);
3. plan the stacks ``<prefix>`` (management.yaml) and ``<prefix>-worker`` (worker.yaml) as
   change sets (templates over 51,200 bytes go through the bucket), show them, ask before
   replacements/removals (unless ``--yes``); ``--dry-run`` stops here and deletes them.
   Before a create, leftovers of a failed one stop the deploy or are imported (``--adopt``);
4. execute them, streaming stack events (after a create, an update turns on the event
   table's deletion protection); then the member StackSet, the schema registry,
   and the secrets from ``GITHUB_TOKEN`` / ``GITHUB_WEBHOOK_SECRET`` when set;
5. print the outputs, webhook URL first.

``deploy(options)`` is the programmatic entry (local mode calls it with ``local=True``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from handlers.core.errors import ConfigError, GipError, UsageError
from ops import aws, first_create, local_gaps, packaging, schema_registry, stacks, stackset
from ops.aws import aws_errors, error_code
from ops.template_source import template_for

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
DEFAULT_PREFIX = "github-issue-processor"
ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
OU_ID = re.compile(r"^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$")
LABEL = re.compile(r"^[^,]{1,50}$")


@dataclass
class DeployOptions:
    """Everything a deploy needs; ``run(args)`` builds it from the command line."""

    org_id: str
    prefix: str = DEFAULT_PREFIX
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    labels: list[str] = field(default_factory=lambda: ["needs-reproduction"])
    dry_run: bool = False
    yes: bool = False
    local: bool = False
    ou_ids: list[str] = field(default_factory=list)
    external_id: str | None = None
    worker_image: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    bot_login: str = ""
    trusted_permissions: str = "admin,maintain,write"
    member_policy_arns: list[str] = field(default_factory=lambda: ["arn:aws:iam::aws:policy/PowerUserAccess"])
    vendor_deps: bool = True
    installer: packaging.Installer | None = None  # None + vendor_deps: pip
    source_root: Path = ROOT  # where handlers/, schemas/, worker/ and setup.cfg live
    stackset: bool = True
    adopt: bool = False  # import empty leftovers of an earlier failed create
    sleep: Callable[[float], None] = time.sleep
    poll: float = 3.0


class ConsoleReporter:
    """Prints progress the way ``cdk deploy`` does: one line per stack event."""

    def __init__(self, out: TextIO | None = None, *, yes: bool = False) -> None:
        self.out = out or sys.stdout
        self.yes = yes

    def info(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def notice(self, message: str) -> None:
        print(f"note: {message}", file=self.out, flush=True)

    def event(self, count: int, total: int, event: dict[str, Any]) -> None:
        reason = event.get("ResourceStatusReason", "")
        width = len(str(total))
        print(f"  [{count:>{width}}/{total}] {event.get('ResourceStatus', ''):<20} "
              f"{event.get('ResourceType', ''):<40} {event.get('LogicalResourceId', '')}"
              f"{'  ' + reason if reason else ''}", file=self.out, flush=True)

    def confirm(self, question: str) -> bool:
        if self.yes:
            return True
        if not sys.stdin.isatty():
            return False
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def validate(options: DeployOptions) -> None:
    """Pure checks of the options; raises UsageError (exit 2) with one line."""
    if not ORG_ID.match(options.org_id or ""):
        raise UsageError(f"--org must look like o-xxxxxxxxxx (o- then 10-32 lowercase letters/digits), got {options.org_id!r}")
    if not PREFIX.match(options.prefix or ""):
        raise UsageError(f"--prefix must match {PREFIX.pattern}, got {options.prefix!r}")
    if not options.labels or not all(LABEL.match(label) for label in options.labels):
        raise UsageError("--labels must be a comma-separated list of label names")
    bad = [ou for ou in options.ou_ids if not OU_ID.match(ou)]
    if bad:
        raise UsageError(f"--ou ids must look like ou-xxxx-xxxxxxxx or r-xxxx, got {bad[0]!r}")
    if options.vpc_id and not options.subnet_ids:
        raise UsageError("--vpc-id needs --subnet-ids")


def default_external_id(org_id: str, account: str, prefix: str) -> str:
    """Pure: a stable ExternalId per deployment (a confused-deputy guard, not a secret)."""
    return f"{prefix}-{hashlib.sha256(f'{org_id}:{account}:{prefix}'.encode()).hexdigest()[:20]}"


def stack_names(prefix: str) -> dict[str, str]:
    """Stack name -> template file, in deploy order."""
    return {prefix: "management.yaml", f"{prefix}-worker": "worker.yaml"}


def deploy(options: DeployOptions, reporter: stacks.Reporter | None = None) -> dict[str, str]:
    """Deploy (or, with ``dry_run``, plan) everything; returns the merged stack outputs."""
    reporter = reporter or ConsoleReporter(yes=options.yes)
    validate(options)
    sess = aws.session(options)
    region = sess.region_name
    if not options.endpoint_url and not os.environ.get("AWS_ENDPOINT_URL") \
            and region not in sess.get_available_regions("cloudformation"):
        raise ConfigError(f"unknown AWS region {region!r}")

    def client(name: str) -> Any:
        return aws.client(options, name, sess=sess)

    account = aws.check_credentials(options, sess=sess)["Account"]
    reporter.info(f"deploying {options.prefix} to account {account} in {region}"
                  f"{' (dry run)' if options.dry_run else ''}")
    external_id = options.external_id or default_external_id(options.org_id, account, options.prefix)
    bucket = packaging.artifacts_bucket_name(options.prefix, account, region)
    artifacts = _build(options, reporter)
    s3 = client("s3")
    if not options.dry_run:
        endpoint = aws.endpoint_url(options) or ""
        tls_only = not endpoint.startswith("http://")
        if packaging.ensure_bucket(s3, bucket=bucket, region=region, tls_only=tls_only):
            reporter.info(f"created artifacts bucket {bucket}")
            if not tls_only:
                reporter.notice(f"plain-HTTP endpoint: no TLS-only policy on {bucket}")
        for art in artifacts.values():
            uploaded = packaging.upload(s3, bucket=bucket, key=art.key, data=art.data)
            reporter.info(f"{art.kind} bundle {art.key}: {'uploaded' if uploaded else 'unchanged'}"
                          f" ({len(art.data) // 1024} KiB)")
    if options.local:
        local_gaps.quiet_moto()
    if options.local and not options.vpc_id:
        vpc, subnets = local_gaps.default_vpc(client("ec2"), reporter.notice)
        if vpc:
            options = replace(options, vpc_id=vpc, subnet_ids=subnets)
    params = _parameters(options, bucket=bucket, external_id=external_id, artifacts=artifacts)
    cfn = client("cloudformation")
    tags = {first_create.TAG: options.prefix}
    status = _before_create(options, cfn, client, account, params["management.yaml"], tags, reporter)
    params["management.yaml"][first_create.PROTECTION] = first_create.protection(status)
    plans, templates = [], {}
    for name, template_file in stack_names(options.prefix).items():
        templates[name] = template_for((TEMPLATES / template_file).read_text(), s3=s3, bucket=bucket,
                                       region=region, name=template_file, local=options.local)
        plan = stacks.plan(cfn, stack_name=name, template=templates[name],
                           parameters=params[template_file], tags=tags,
                           reporter=reporter, sleep=options.sleep, poll=options.poll)
        plans.append(plan)
        for line in stacks.render_changes(plan):
            reporter.info(line)
    if options.dry_run:
        for plan in plans:
            stacks.discard(cfn, plan)
        reporter.info("dry run: nothing was executed")
        return {}
    risky = [c for p in plans for c in p.risky]
    if risky and not reporter.confirm(f"{len(risky)} resource(s) will be replaced or removed. Continue?"):
        for plan in plans:
            stacks.discard(cfn, plan)
        raise GipError("aborted: replacements or removals not confirmed (use --yes to accept)")
    for plan in plans:
        stacks.apply(cfn, plan, reporter=reporter, sleep=options.sleep, poll=options.poll)
    if plans[0].kind == "CREATE":  # created without deletion protection: turn it on now
        params["management.yaml"][first_create.PROTECTION] = "true"
        protect = stacks.plan(cfn, stack_name=options.prefix, template=templates[options.prefix],
                              parameters=params["management.yaml"], tags=tags, reporter=reporter,
                              sleep=options.sleep, poll=options.poll)
        reporter.info(f"{options.prefix}: turning on the event table's deletion protection")
        stacks.apply(cfn, protect, reporter=reporter, sleep=options.sleep, poll=options.poll)
    out: dict[str, str] = {"ArtifactsBucket": bucket}
    for plan in plans:
        out.update(stacks.outputs(cfn, plan.stack_name))
        if options.local:
            out.update(local_gaps.after_deploy(client, plan, stack_names(options.prefix)[plan.stack_name],
                                              params, region, account, reporter.notice))
    _store_secrets(client("secretsmanager"), out, reporter)
    if options.stackset:
        _deploy_stackset(options, cfn, client, out, external_id, region, reporter)
    if not options.local:
        schema_registry.register(client("schemas"), registry=f"{options.prefix}-events",
                                 source=options.prefix, reporter=reporter)
    return out


def _before_create(options: DeployOptions, cfn: Any, client: Callable[[str], Any], account: str,
                   params: dict[str, str], tags: dict[str, str], reporter: stacks.Reporter) -> str | None:
    """Before the management stack's create: stop on (or, with --adopt, import) leftovers of
    an earlier failed create. Returns the stack's status afterwards."""
    status = stacks.stack_status(cfn, options.prefix)
    if not first_create.creating(status):
        return status
    orphans = first_create.find_orphans(client("dynamodb"), client("s3"), prefix=options.prefix, account=account)
    stop = first_create.verdict(orphans, prefix=options.prefix, adopt=options.adopt)
    if stop:
        raise GipError(stop)
    if not orphans or options.dry_run:
        return status
    first_create.adopt(cfn, stack_name=options.prefix, body=(TEMPLATES / "management.yaml").read_text(),
                       parameters={**params, first_create.PROTECTION: "false"}, orphans=orphans, tags=tags,
                       reporter=reporter, sleep=options.sleep, poll=options.poll)
    return stacks.stack_status(cfn, options.prefix)


def _build(options: DeployOptions, reporter: stacks.Reporter) -> dict[str, packaging.Artifact]:
    installer = options.installer
    if installer is None and options.vendor_deps:
        installer = packaging.pip_installer()
    if installer is None:
        reporter.notice("bundles built without vendored dependencies (--no-deps)")
    return {kind: packaging.build(kind, root=options.source_root, installer=installer)
            for kind in ("lambda", "worker")}


def _parameters(
    options: DeployOptions, *, bucket: str, external_id: str, artifacts: dict[str, packaging.Artifact]
) -> dict[str, dict[str, str]]:
    common = {"Prefix": options.prefix, "OrgId": options.org_id, "ArtifactsBucket": bucket,
              "ExternalId": external_id}
    return {
        "management.yaml": {
            **common,
            "LambdaCodeKey": artifacts["lambda"].key,
            "RequiredLabels": ",".join(options.labels),
            "TrustedPermissions": options.trusted_permissions,
            "BotLogin": options.bot_login,
            "TargetOuIds": ",".join(options.ou_ids),
        },
        "worker.yaml": {
            **common,
            "WorkerBundleKey": artifacts["worker"].key,
            "WorkerImage": options.worker_image,
            "VpcId": options.vpc_id,
            "SubnetIds": ",".join(options.subnet_ids),
        },
    }


def _store_secrets(sm: Any, out: dict[str, str], reporter: stacks.Reporter) -> None:
    """Fill the secrets from GITHUB_TOKEN / GITHUB_WEBHOOK_SECRET when set (never printed)."""
    for env, key in (("GITHUB_TOKEN", "GithubTokenSecretArn"), ("GITHUB_WEBHOOK_SECRET", "WebhookSecretArn")):
        value, secret_id = os.environ.get(env), out.get(key)
        if not value or not secret_id:
            continue
        with aws_errors(f"secretsmanager:PutSecretValue {key}"):
            try:
                current = sm.get_secret_value(SecretId=secret_id).get("SecretString")
            except Exception as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                current = None
            if current != value:
                sm.put_secret_value(SecretId=secret_id, SecretString=value)
                reporter.info(f"stored {env} in {secret_id.rsplit(':', 1)[-1]}")


def _deploy_stackset(
    options: DeployOptions, cfn: Any, client: Callable[[str], Any], out: dict[str, str],
    external_id: str, region: str, reporter: stacks.Reporter,
) -> None:
    if options.local:
        # moto runs StackSet instances itself and cannot run the SNS-backed custom resource.
        reporter.notice("local: member StackSet not deployed (moto cannot run its SNS-backed "
                        "registration); local mode registers member accounts directly")
        return
    targets = options.ou_ids or [stackset.org_root(client("organizations"))]
    stackset.deploy(
        cfn, name=f"{options.prefix}-member",
        template=(TEMPLATES / "member-account.yaml").read_text(),
        parameters=member_parameters(options, out, external_id),
        ou_ids=targets, region=region, reporter=reporter, sleep=options.sleep, poll=options.poll,
    )


def member_parameters(options: DeployOptions, out: dict[str, str], external_id: str) -> dict[str, str]:
    """Pure: the member StackSet's parameters from the options and the stack outputs."""
    return {
        "Prefix": options.prefix, "OrgId": options.org_id, "ExternalId": external_id,
        "WorkerTaskRoleArn": out.get("WorkerTaskRoleArn", ""),
        "OrgEventsRoleArn": out.get("OrgEventsRoleArn", ""),
        "ReconcileRoleArn": out.get("ReconcileRoleArn", ""),
        "RegistrarTopicArn": out.get("RegistrarTopicArn", ""),
        "ManagedPolicyArns": ",".join(options.member_policy_arns),
    }


def render_outputs(out: dict[str, str]) -> list[str]:
    """Pure: the outputs, webhook URL first, then how to set the secrets."""
    first = ["WebhookUrl", "BusName", "BusArn", "EventsTable", "PoolTable", "IssuesTable", "ResultsBucket"]
    keys = [k for k in first if k in out] + sorted(k for k in out if k not in first)
    width = max((len(k) for k in keys), default=0)
    lines = ["", "Outputs:"] + [f"  {k:<{width}}  {out[k]}" for k in keys]
    if out.get("WebhookSecretArn") or out.get("GithubTokenSecretArn"):
        lines += [
            "",
            "Next steps:",
            "  1. GitHub token (notifier + gatekeeper):",
            f"     aws secretsmanager put-secret-value --secret-id {out.get('GithubTokenSecretArn', '')} --secret-string \"$GITHUB_TOKEN\"",
            "  2. Webhook secret (paste it into the repository's webhook settings):",
            f"     aws secretsmanager get-secret-value --secret-id {out.get('WebhookSecretArn', '')} --query SecretString --output text",
            f"  3. GitHub webhook: payload URL {out.get('WebhookUrl', '')}, content type application/json, event 'Issues' (+ 'Issue comments').",
        ]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Deploy flags (``--region/--profile/--prefix/--endpoint-url`` come from ops.cli)."""
    parser.add_argument("--org", required=True, help="AWS Organization id, o-xxxxxxxxxx")
    parser.add_argument("--labels", default="needs-reproduction", help="required labels, comma-separated")
    parser.add_argument("--dry-run", action="store_true", help="show the change sets, execute nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before replacements/removals")
    parser.add_argument("--ou", action="append", default=[], help="target OU id for the member StackSet (repeatable; default: the org root)")
    parser.add_argument("--worker-image", default="", help="your own worker image URI (worker/Dockerfile)")
    parser.add_argument("--external-id", default=None, help="sts:ExternalId for member roles (default: derived)")
    parser.add_argument("--vpc-id", default="", help="existing VPC for the worker (default: create one)")
    parser.add_argument("--subnet-ids", default="", help="subnets for the worker, comma-separated")
    parser.add_argument("--bot-login", default="", help="the GitHub login the notifier comments as")
    parser.add_argument("--member-policy-arns", default="arn:aws:iam::aws:policy/PowerUserAccess",
                        help="managed policies of the member processing role, comma-separated")
    parser.add_argument("--no-deps", action="store_true", help="do not vendor dependencies into the bundles")
    parser.add_argument("--no-stackset", action="store_true", help="skip the member StackSet")
    parser.add_argument("--adopt", action="store_true",
                        help="import the empty event table/results bucket left by an earlier failed create")


def options_from_args(args: argparse.Namespace) -> DeployOptions:
    """Pure: argparse namespace -> DeployOptions."""
    def split(value: str | None) -> list[str]:
        return [v.strip() for v in (value or "").split(",") if v.strip()]

    return DeployOptions(
        org_id=args.org, prefix=args.prefix, region=args.region, profile=args.profile,
        endpoint_url=args.endpoint_url, labels=split(args.labels), dry_run=args.dry_run,
        yes=args.yes, ou_ids=[ou for value in args.ou for ou in split(value)],
        external_id=args.external_id, worker_image=args.worker_image, vpc_id=args.vpc_id,
        subnet_ids=split(args.subnet_ids), bot_login=args.bot_login,
        member_policy_arns=split(args.member_policy_arns), vendor_deps=not args.no_deps,
        stackset=not args.no_stackset, adopt=args.adopt,
        # An endpoint on this machine is moto: fill its gaps as local mode does.
        local=aws.is_local_endpoint(args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")),
    )


def run(args: argparse.Namespace) -> int:
    """CLI entry: deploy and print the outputs."""
    options = options_from_args(args)
    validate(options)
    reporter = ConsoleReporter(yes=options.yes)
    out = deploy(options, reporter)
    if out:
        for line in render_outputs(out):
            reporter.info(line)
    return 0
