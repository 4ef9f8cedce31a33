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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from gip.adapters import aws
from gip.adapters.aws import aws_errors, error_code
from gip.adapters.github import urls
from gip.cli import (
    first_create,
    github_app,
    guardrails,
    nuke_release,
    packaging,
    pool_scope,
    schema_registry,
    stacks,
    stackset,
)
from gip.cli.console_reporter import ConsoleReporter
from gip.cli.template_source import template_for
from gip.errors import ConfigError, GipError, UsageError
from gip.local import gaps as local_gaps

ROOT = Path(__file__).resolve().parents[2]
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
    regions: list[str] = field(default_factory=list)  # empty: remembered, else the deploy region
    guardrails: str | None = None  # None: remembered, else ours; "none"; or SCP ids
    external_id: str | None = None
    worker_image: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    bot_login: str = ""
    github_api_url: str = "https://api.github.com"  # checked by gip.adapters.github.urls
    trusted_permissions: str = "admin,maintain,write"
    member_policy_arns: list[str] = field(default_factory=lambda: ["arn:aws:iam::aws:policy/PowerUserAccess"])
    vendor_deps: bool = True
    installer: packaging.Installer | None = None  # None + vendor_deps: pip
    vendor_nuke: bool = True  # the pinned aws-nuke in the worker bundle (--no-nuke: built-in cleaner)
    nuke_fetcher: nuke_release.Fetcher = nuke_release.download
    source_root: Path = ROOT  # where handlers/, schemas/, worker/ and setup.cfg live
    stackset: bool = True
    adopt: bool = False  # import empty leftovers of an earlier failed create
    sleep: Callable[[float], None] = time.sleep
    poll: float = 3.0


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
    pool_scope.check_flags(regions=options.regions, guardrails=options.guardrails)
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

    client: Callable[[str], Any] = cache(lambda name: aws.client(options, name, sess=sess))  # one per service

    account = aws.check_credentials(options, sess=sess)["Account"]
    scope = pool_scope.resolve(ou_ids=options.ou_ids, regions=options.regions, guardrails=options.guardrails,
                               remembered=pool_scope.remembered(client("cloudformation"), options.prefix),
                               region=region, local=options.local)
    options = replace(options, ou_ids=list(scope.ou_ids), regions=list(scope.regions),
                      guardrails=scope.guardrails.text)
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
    worker_status = stacks.stack_status(cfn, f"{options.prefix}-worker")
    params["worker.yaml"]["CreatingStack"] = creating_stack(worker_status, local=options.local)
    tags = {first_create.TAG: options.prefix}
    status = first_create.prepare(cfn, client, account=account, prefix=options.prefix, adopt=options.adopt,
                                  dry_run=options.dry_run, body=(TEMPLATES / "management.yaml").read_text(),
                                  params=params["management.yaml"], tags=tags, reporter=reporter,
                                  sleep=options.sleep, poll=options.poll)
    params["management.yaml"][first_create.PROTECTION] = first_create.protection(status)
    # Create-only values, flipped by one follow-up update so that no later update re-sends them.
    settle = [(options.prefix, "management.yaml", first_create.PROTECTION, "true",
               "turning on the event table's deletion protection")] if first_create.creating(status) else []
    if not options.local and first_create.creating(worker_status):
        settle.append((f"{options.prefix}-worker", "worker.yaml", "CreatingStack", "false",
                       "handing DesiredCount to the capacity function and the autoscaler"))
    from gip.cli import preview  # (deploy.py is at the 400-line limit)
    plans, templates = [], {}
    for name, template_file in stack_names(options.prefix).items():
        templates[name] = template_for((TEMPLATES / template_file).read_text(), s3=s3, bucket=bucket,
                                       region=region, name=template_file, local=options.local)
        plan = stacks.plan(cfn, stack_name=name, template=templates[name],
                           parameters=params[template_file], tags=tags,
                           reporter=reporter, sleep=options.sleep, poll=options.poll)
        plans.append(plan)
        for line in preview.stack_lines(cfn, plan, params[template_file], dry_run=options.dry_run):
            reporter.info(line)
    if options.dry_run:
        preview.finish(cfn, s3, plans, options, bucket=bucket, artifacts=artifacts.values(), templates=TEMPLATES,
                       member=lambda out: member_parameters(options, out, external_id), reporter=reporter)
        return {}
    risky = [c for p in plans for c in p.risky]
    if risky and not reporter.confirm(f"{len(risky)} resource(s) will be replaced or removed. Continue?"):
        for plan in plans:
            stacks.discard(cfn, plan)
        raise GipError("aborted: replacements or removals not confirmed (use --yes to accept)")
    for plan in plans:
        stacks.apply(cfn, plan, reporter=reporter, sleep=options.sleep, poll=options.poll)
    for stack_name, template_file, key, value, why in settle:
        params[template_file][key] = value
        reporter.info(f"{stack_name}: {why}")
        follow = stacks.plan(cfn, stack_name=stack_name, template=templates[stack_name],
                             parameters=params[template_file], tags=tags, reporter=reporter,
                             sleep=options.sleep, poll=options.poll)
        stacks.apply(cfn, follow, reporter=reporter, sleep=options.sleep, poll=options.poll)
    out: dict[str, str] = {"ArtifactsBucket": bucket}
    for plan in plans:
        out.update(stacks.outputs(cfn, plan.stack_name))
        if options.local:
            out.update(local_gaps.after_deploy(client, plan, stack_names(options.prefix)[plan.stack_name],
                                              params, region, account, reporter.notice))
    _store_secrets(client("secretsmanager"), out, reporter)
    if not options.local:  # local mode guards the pool OU it creates (gip.local.aws_setup)
        guardrails.ensure(client("organizations"), prefix=options.prefix, choice=scope.guardrails,
                          ou_ids=options.ou_ids, regions=options.regions, topic_arn=out.get("RegistrarTopicArn", ""),
                          notice=reporter.notice, info=reporter.info)
    if options.stackset:
        _deploy_stackset(options, cfn, client, out, external_id, region, reporter)
    if not options.local:
        schema_registry.register(client("schemas"), registry=f"{options.prefix}-events",
                                 source=options.prefix, reporter=reporter)
    return out


def _build(options: DeployOptions, reporter: stacks.Reporter) -> dict[str, packaging.Artifact]:
    installer = options.installer
    if installer is None and options.vendor_deps:
        installer = packaging.pip_installer()
    if installer is None:
        reporter.notice("bundles built without vendored dependencies (--no-deps)")
    nuke = None
    # Only the stock image runs the bundle's aws-nuke; locally aws-nuke is off (it ignores the endpoint).
    if options.vendor_nuke and installer is not None and not options.local and not options.worker_image:
        nuke = nuke_release.aws_nuke_binary(fetch=options.nuke_fetcher)
    elif not options.worker_image and not options.local:
        reporter.notice("worker bundle without aws-nuke: the stock image cleans with the built-in cleaner")
    return {kind: packaging.build(kind, root=options.source_root, installer=installer, nuke=nuke)
            for kind in ("lambda", "worker")}


def _parameters(
    options: DeployOptions, *, bucket: str, external_id: str, artifacts: dict[str, packaging.Artifact]
) -> dict[str, dict[str, str]]:
    # AllowedRegions: the regions the SCP allows are the regions the cleaner sweeps.
    common = {"Prefix": options.prefix, "OrgId": options.org_id, "ArtifactsBucket": bucket,
              "ExternalId": external_id, "AllowedRegions": ",".join(options.regions)}
    return {
        "management.yaml": {
            **common,
            "LambdaCodeKey": artifacts["lambda"].key,
            "RequiredLabels": ",".join(options.labels),
            "TrustedPermissions": options.trusted_permissions,
            "BotLogin": options.bot_login,
            "GitHubApiUrl": options.github_api_url,
            "TargetOuIds": ",".join(options.ou_ids),
            "Guardrails": options.guardrails or "default",
        },
        "worker.yaml": {
            **common,
            "WorkerBundleKey": artifacts["worker"].key,
            "WorkerImage": options.worker_image,
            "VpcId": options.vpc_id,
            "SubnetIds": ",".join(options.subnet_ids),
        },
    }


def creating_stack(status: str | None, *, local: bool) -> str:
    """worker.yaml's ``CreatingStack``: "true" when the next change set creates the stack.

    Local mode keeps "true": moto runs no ECS tasks, and its CloudFormation reports defaulted,
    re-formatted parameters after an update, so a settling update would make every rerun look
    changed.
    """
    return "true" if local or first_create.creating(status) else "false"


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
        **{key: out.get(key, "") for key in ("WorkerTaskRoleArn", "WorkerTaskRoleId", "OrgEventsRoleArn",
                                             "ReconcileRoleArn", "RegistrarTopicArn")},
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
    """Deploy flags (``--region/--profile/--prefix/--endpoint-url`` come from gip.cli.main)."""
    parser.add_argument("--org", required=True, help="AWS Organization id, o-xxxxxxxxxx")
    parser.add_argument("--labels", default="needs-reproduction", help="required labels, comma-separated")
    parser.add_argument("--dry-run", action="store_true", help="show the change sets, execute nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before replacements/removals")
    parser.add_argument("--ou", action="append", default=[], help="OUs whose accounts join the pool (required on the first deploy)")
    parser.add_argument("--regions", default="", help="regions the pool may use (default: the deploy region)")
    parser.add_argument("--guardrails", default=None, help="none, or your own SCP ids instead of <prefix>-guardrails")
    parser.add_argument("--worker-image", default="", help="your own worker image URI (worker/Dockerfile)")
    parser.add_argument("--external-id", default=None, help="sts:ExternalId for member roles (default: derived)")
    parser.add_argument("--vpc-id", default="", help="existing VPC for the worker (default: create one)")
    parser.add_argument("--subnet-ids", default="", help="subnets for the worker, comma-separated")
    parser.add_argument("--bot-login", default="", help="the GitHub login the notifier comments as")
    parser.add_argument("--github-api-url", default=urls.DEFAULT, type=urls.api_url_arg, help="GitHub API root (GHES: https://HOST/api/v3)")
    parser.add_argument("--member-policy-arns", default="arn:aws:iam::aws:policy/PowerUserAccess",
                        help="managed policies of the member processing role, comma-separated")
    parser.add_argument("--no-deps", action="store_true", help="do not vendor dependencies into the bundles")
    parser.add_argument("--no-nuke", action="store_true",
                        help="leave aws-nuke out of the worker bundle (the built-in cleaner cleans)")
    parser.add_argument("--no-stackset", action="store_true", help="skip the member StackSet")
    parser.add_argument("--adopt", action="store_true",
                        help="import the empty event table/results bucket left by an earlier failed create")
    github_app.add_arguments(parser)  # --github-app-id, --github-app-key-file, --redeliver-hooks


def options_from_args(args: argparse.Namespace) -> DeployOptions:
    """Pure: argparse namespace -> DeployOptions."""
    def split(value: str | None) -> list[str]:
        return [v.strip() for v in (value or "").split(",") if v.strip()]

    return DeployOptions(
        org_id=args.org, prefix=args.prefix, region=args.region, profile=args.profile,
        endpoint_url=args.endpoint_url, labels=split(args.labels), dry_run=args.dry_run,
        yes=args.yes, ou_ids=[ou for value in args.ou for ou in split(value)],
        external_id=args.external_id, worker_image=args.worker_image, vpc_id=args.vpc_id,
        subnet_ids=split(args.subnet_ids), bot_login=args.bot_login, github_api_url=args.github_api_url,
        member_policy_arns=split(args.member_policy_arns), vendor_deps=not args.no_deps,
        vendor_nuke=not args.no_nuke, stackset=not args.no_stackset, regions=split(args.regions), guardrails=args.guardrails,
        adopt=args.adopt,
        # An endpoint on this machine is moto: fill its gaps as local mode does.
        local=aws.is_local_endpoint(args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")),
    )


def run(args: argparse.Namespace) -> int:
    """CLI entry: deploy and print the outputs."""
    options = options_from_args(args)
    validate(options)
    reporter = ConsoleReporter(yes=options.yes)
    out = github_app.deploying(args, options, reporter, deploy)  # + the App secret, the hooks
    if out:
        for line in render_outputs(out):
            reporter.info(line)
    return 0
