"""How a template reaches CloudFormation: inline, or from the artifacts bucket when too big.

CreateChangeSet takes at most 51,200 bytes as ``TemplateBody``; a larger template must be
an S3 ``TemplateURL`` (up to 1 MB). See
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from gip.cli import packaging
from gip.cli.stacks import Template

TEMPLATE_BODY_LIMIT = 51_200  # bytes, UTF-8


def template_key(body: str) -> str:
    """Pure: the content-addressed key of a template in the artifacts bucket."""
    return f"templates/{hashlib.sha256(body.encode()).hexdigest()[:32]}.yaml"


def template_url(bucket: str, region: str, key: str) -> str:
    """Pure: the virtual-hosted S3 URL CloudFormation reads the template from."""
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def needs_url(body: str, limit: int = TEMPLATE_BODY_LIMIT) -> bool:
    """Pure: True when ``body`` is over CloudFormation's TemplateBody limit."""
    return len(body.encode()) > limit


def for_moto(body: str) -> str:
    """Pure: ``body`` as moto should get it. moto keeps only ``DeletionPolicy: Retain`` on
    DeleteStack; for a stack that was created, ``RetainExceptOnCreate`` means just that."""
    return body.replace("DeletionPolicy: RetainExceptOnCreate", "DeletionPolicy: Retain")


def template_for(body: str, *, s3: Any, bucket: str, region: str, name: str, local: bool = False,
                 limit: int = TEMPLATE_BODY_LIMIT) -> Template:
    """A :class:`Template` for ``body``: inline when small enough, else uploaded (once,
    content-addressed) and passed by URL. The body is kept for the no-op comparison."""
    if local:
        body = for_moto(body)
    if not needs_url(body, limit):
        return Template(body=body)
    key = template_key(body)
    if not packaging.bucket_exists(s3, bucket=bucket):
        # Only a first --dry-run gets here (a deploy creates the bucket first): the plan of a
        # new stack is read from the template itself (stacks.plan), no upload needed.
        return Template(body=body, too_big_for=bucket)
    packaging.upload(s3, bucket=bucket, key=key, data=body.encode())
    return Template(body=body, url=template_url(bucket, region, key))


def resources_of(body: str) -> list[tuple[str, str]]:
    """Pure: (logical id, type) of each resource in a template written in this repository's
    style (two-space indent, ``Type:`` as the first key), in order."""
    _, _, rest = body.partition("\nResources:\n")
    found = re.findall(r"^  ([A-Za-z0-9]+):\n(?:    #.*\n)*    Type: *['\"]?([A-Za-z0-9:]+)", rest, re.M)
    return [(logical_id, kind) for logical_id, kind in found]
