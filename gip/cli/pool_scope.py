"""Which OUs the pool draws from, which regions it may use, and which guardrails guard it.

The flags win; without them a later deploy reuses what the management stack ``<prefix>``
was deployed with: its ``TargetOuIds``, ``AllowedRegions`` and ``Guardrails`` parameters.
The stack is the one durable place that exists exactly as long as the deployment does, and
``aws cloudformation describe-stacks`` shows it to an operator.
The first deploy must name its OUs: never the whole Organization by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gip.adapters.aws import aws_errors, error_code
from gip.cli.guardrails import Choice, parse_choice
from gip.errors import UsageError

REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
WHY_OU = ("--ou is required on the first deploy: without it every account in the Organization "
          "(log archive, audit, production) would get a PowerUserAccess role our worker can assume, "
          "join the pool and be wiped after each run; name the sandbox OUs, e.g. --ou ou-ab12-cdef3456 "
          "(or the root r-xxxx to mean the whole Organization)")


@dataclass(frozen=True)
class Scope:
    ou_ids: tuple[str, ...]
    regions: tuple[str, ...]
    guardrails: Choice


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def check_flags(*, regions: list[str], guardrails: str | None) -> None:
    """Pure: the flags' shape, before any AWS call. UsageError (exit 2) with one line."""
    if guardrails is not None:
        parse_choice(guardrails)
    bad = [r for r in regions if not REGION.match(r)]
    if bad:
        raise UsageError(f"--regions takes region names like us-east-1, got {bad[0]!r}")


def resolve(*, ou_ids: list[str], regions: list[str], guardrails: str | None,
            remembered: dict[str, str], region: str, local: bool) -> Scope:
    """Pure: the flags, else the remembered parameters, else the defaults. UsageError (exit 2)."""
    ous = ou_ids or split(remembered.get("TargetOuIds"))
    if not ous and not local:  # local mode creates its own pool OU after the deploy
        raise UsageError(WHY_OU)
    allowed = regions or split(remembered.get("AllowedRegions")) or [region]
    check_flags(regions=allowed, guardrails=None)
    if region not in allowed:
        raise UsageError(f"--regions must include the deploy region {region}: the member stacks and "
                         f"the processing role live there")
    choice = parse_choice(guardrails if guardrails is not None else remembered.get("Guardrails"))
    return Scope(tuple(dict.fromkeys(ous)), tuple(dict.fromkeys(allowed)), choice)


def remembered(cfn: Any, stack_name: str) -> dict[str, str]:
    """The deployed management stack's parameters ({} before the first deploy)."""
    with aws_errors(f"cloudformation:DescribeStacks {stack_name}"):
        try:
            stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return {}
            raise
    if not stacks:
        return {}
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])}
