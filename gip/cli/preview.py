"""``deploy --dry-run``: what a deploy would change, read-only.

For each stack, the change set's resource rows (:func:`gip.cli.stacks.render_changes`) and, for
a stack that exists, which parameters change (old → new, read from DescribeStacks). Then the
two things a deploy touches outside the stacks: the artifacts bucket (created or not, which
bundles would be uploaded) and the member StackSet (created, updated with which parameters, or
unchanged). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gip.adapters.aws import aws_errors
from gip.cli import packaging, stacks, stackset
from gip.cli.render import clip

HIDDEN = "****"  # how DescribeStacks shows a NoEcho value


def parameter_changes(live: Mapping[str, str], wanted: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Pure: ``(key, old, new)`` for each given parameter whose value would change (a key the
    live stack lacks is ``(new)``; a NoEcho value cannot be compared and is left out)."""
    out = []
    for key in sorted(wanted):
        old = live.get(key)
        if old == HIDDEN:
            continue
        if old is None or _items(old) != _items(wanted[key]):
            out.append((key, "(new)" if old is None else old, wanted[key]))
    return out


def _items(value: str) -> tuple[str, ...]:
    """A value as list items: AWS shows lists as ``a,b``, moto as ``['a', 'b']``."""
    return tuple(i.strip().strip("'\"") for i in value.strip("[]").split(",") if i.strip())


def live_parameters(cfn: Any, stack_name: str) -> dict[str, str]:
    with aws_errors(f"cloudformation:DescribeStacks {stack_name}"):
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}


def stack_lines(cfn: Any, plan: stacks.Plan, parameters: Mapping[str, str], *, dry_run: bool) -> list[str]:
    """The plan's lines; with ``dry_run``, an existing stack's parameter changes too."""
    lines = stacks.render_changes(plan)
    if not dry_run or plan.kind != "UPDATE" or plan.no_changes:
        return lines
    changed = parameter_changes(live_parameters(cfn, plan.stack_name), parameters)
    if not plan.changes:
        lines = [f"{plan.stack_name}: " + ("parameters changed, no resource changes" if changed
                                           else "template changed, no resource changes")]
    lines += [f"  parameter {key}: {clip(old, 60)} → {clip(new, 60)}" for key, old, new in changed]
    return lines


def artifacts_lines(s3: Any, *, bucket: str, artifacts: Iterable[packaging.Artifact]) -> list[str]:
    """The artifacts bucket and the bundles a deploy would upload (content-addressed keys)."""
    if not packaging.bucket_exists(s3, bucket=bucket):
        return [f"artifacts bucket {bucket}: would be created; every bundle uploaded"]
    lines = [f"artifacts bucket {bucket}: exists"]
    for art in artifacts:
        there = packaging.object_exists(s3, bucket=bucket, key=art.key)
        lines.append(f"  {art.kind} bundle {art.key}: " + ("unchanged" if there else
                                                          f"would be uploaded ({len(art.data) // 1024} KiB)"))
    return lines


def stackset_lines(cfn: Any, *, name: str, template: str, parameters: Mapping[str, str] | None,
                   ou_ids: Iterable[str]) -> list[str]:
    """The member StackSet: created, updated (with which parameters), or unchanged.
    ``parameters`` None: they come from stacks that do not exist yet."""
    targets = ", ".join(ou_ids) or "the organization root"
    current = stackset.describe(cfn, name)
    if current is None:
        return [f"StackSet {name}: would be created and deployed to {targets} (after the stacks)"]
    keys = stackset.changed_parameters(current, dict(parameters)) if parameters is not None else []
    body_changed = current.get("TemplateBody", "").strip() != template.strip()
    if not (keys or body_changed):
        return [f"StackSet {name}: no changes"]
    what = [*(["template"] if body_changed else []), *([f"parameters {', '.join(keys)}"] if keys else [])]
    return [f"StackSet {name}: would update every instance ({'; '.join(what)})"]


def finish(cfn: Any, s3: Any, plans: list[stacks.Plan], options: Any, *, bucket: str,
           artifacts: Iterable[packaging.Artifact], templates: Path,
           member: Callable[[dict[str, str]], dict[str, str]], reporter: stacks.Reporter) -> None:
    """The dry run's end: the artifacts bucket, the member StackSet (``member`` builds its
    parameters from the stack outputs; none in local mode or with ``--no-stackset``), then the
    plans discarded. ``options``: the :class:`gip.cli.deploy.DeployOptions`."""
    lines = artifacts_lines(s3, bucket=bucket, artifacts=artifacts)
    if options.stackset and not options.local:
        live = [stacks.outputs(cfn, p.stack_name) for p in plans if p.kind == "UPDATE"]
        out = {k: v for o in live for k, v in o.items()}
        lines += stackset_lines(cfn, name=f"{options.prefix}-member", ou_ids=options.ou_ids,
                                template=(templates / "member-account.yaml").read_text(),
                                parameters=member(out) if live else None)
    else:
        why = "local mode registers member accounts directly" if options.local else "--no-stackset"
        lines.append(f"StackSet {options.prefix}-member: not deployed ({why})")
    for line in lines:
        reporter.info(line)
    for plan in plans:
        stacks.discard(cfn, plan)
    reporter.info("dry run: nothing was executed")
