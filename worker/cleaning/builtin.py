"""The built-in cleaner, the fallback when aws-nuke is absent: every kind, every allowed region.

Order matters: stacks first (they own resources), then what holds other things (ECS services,
load balancers, instances, NAT gateways) before what they hold (Elastic IPs, volumes).
Nothing billable is protected (see :class:`~worker.cleaning.job.Protection`).
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from gip.errors import AwsError, GipError
from worker.cleaning import ec2, services
from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import Kind
from worker.cleaning.stacks import BUCKETS, STACKS

log = logging.getLogger(__name__)

_EC2 = {k.name: k for k in ec2.KINDS}
REGIONAL: tuple[Kind, ...] = (
    STACKS, *services.KINDS[:4], _EC2["ec2:instance"], _EC2["ec2:nat-gateway"], *services.KINDS[4:],
    _EC2["ec2:elastic-ip"], _EC2["ec2:image"], _EC2["ec2:snapshot"], _EC2["ec2:volume"],
)
GLOBAL: tuple[Kind, ...] = (BUCKETS,)
ALL_KINDS = REGIONAL + GLOBAL


def short_error(exc: BaseException) -> str:
    """One short line that names what failed: an AWS error's code, not its response text (that
    is redacted at the event boundary too; this keeps it short)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')} on {exc.operation_name}"
    if isinstance(exc, WaiterError):
        return f"gave up waiting ({exc.name})"
    first = (str(exc).splitlines() or [""])[0][:200]
    if isinstance(exc, GipError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _sweep(kind: Kind, job: CleanupJob, region: str, removed: list[str], errors: list[str]) -> None:
    try:
        client = job.client(kind.service, region)
        ids = kind.find(client, job)
        if ids:
            kind.delete(client, ids, job)
            removed.extend(kind.label(i, region) for i in ids)
    except (ClientError, BotoCoreError, GipError) as exc:
        # keep going: a later kind may free what blocked this one; the residue check decides
        errors.append(f"{kind.name}@{region}: {short_error(exc)}")


def clean(job: CleanupJob) -> list[str]:
    """Delete every billable kind in every allowed region. Returns labels like
    ``ec2:instance/i-0abc@us-east-1``; raises :class:`AwsError` naming what failed."""
    removed: list[str] = []
    errors: list[str] = []
    for region in job.regions:
        for kind in REGIONAL:
            _sweep(kind, job, region, removed, errors)
    for kind in GLOBAL:
        _sweep(kind, job, job.region, removed, errors)
    if errors:
        log.warning("cleanup of %s: %d kind(s) failed: %s", job.account_id, len(errors), "; ".join(errors[:10]))
        raise AwsError(f"{len(errors)} kind(s) failed, first: {errors[0]}")
    return removed
