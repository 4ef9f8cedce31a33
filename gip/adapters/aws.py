"""A small boto3 session/client factory for the operator CLI.

Every subcommand takes ``--region``, ``--profile`` and ``--endpoint-url`` (see ``gip.cli.main``).
``session(args)`` and ``client(args, name)`` honour them; ``args`` is anything with those
attributes (an ``argparse.Namespace`` or ``gip.cli.deploy.DeployOptions``). Missing attributes
fall back to the environment, which boto3 reads itself (``AWS_ENDPOINT_URL`` included).

``aws_errors()`` turns the usual operator mistakes (no credentials, unknown profile, no
region, an unreachable endpoint, a missing permission) into one-line :class:`AwsError`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from botocore.parsers import ResponseParserError

from gip.errors import AwsError, ConfigError

_RETRIES = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"})

ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
}


def session(args: Any) -> boto3.Session:
    """A boto3 session for ``args.profile``/``args.region``; raises ConfigError if no region."""
    profile = getattr(args, "profile", None) or None
    region = getattr(args, "region", None) or None
    try:
        sess = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile '{profile}' not found in your AWS config") from exc
    if not sess.region_name:
        raise ConfigError(
            "no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION"
        )
    return sess


def endpoint_url(args: Any) -> str | None:
    """The explicit endpoint (``--endpoint-url``, else ``AWS_ENDPOINT_URL``), or None."""
    return getattr(args, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL") or None


def is_local_endpoint(url: str | None) -> bool:
    """True for a plain-HTTP endpoint on this machine (the embedded moto server)."""
    from urllib.parse import urlparse

    parsed = urlparse(url or "")
    return parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1")


def client(args: Any, name: str, *, sess: boto3.Session | None = None) -> Any:
    """A boto3 client for service ``name`` honouring region, profile and endpoint URL."""
    sess = sess or session(args)
    return sess.client(name, endpoint_url=endpoint_url(args), config=_RETRIES)


def resource(args: Any, name: str, *, sess: boto3.Session | None = None) -> Any:
    """A boto3 resource, same rules as :func:`client`."""
    sess = sess or session(args)
    return sess.resource(name, endpoint_url=endpoint_url(args), config=_RETRIES)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else ''."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: BaseException, *, action: str = "") -> str:
    """One line for an AWS failure, naming the action when it is a missing permission."""
    return " ".join(_describe(exc, action=action).split())


def _describe(exc: BaseException, *, action: str = "") -> str:
    doing = f" ({action})" if action else ""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found: configure a profile (--profile) or set AWS_ACCESS_KEY_ID"
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return f"incomplete AWS credentials: {exc}"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}: wrong --region or --endpoint-url?"
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code in ACCESS_DENIED:
            return f"permission denied{doing}: {code}: {message}"
        return f"AWS error{doing}: {code}: {message}"
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return f"AWS error{doing}: {exc}"
    return str(exc)


@contextlib.contextmanager
def aws_errors(action: str = "") -> Iterator[None]:
    """Translate botocore failures raised inside the block into one-line AwsError."""
    try:
        yield
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise AwsError(describe(exc, action=action)) from exc
    except ResponseParserError as exc:  # not a BotoCoreError: an endpoint sent garbage
        detail = " ".join(str(exc).split())[:300]
        raise AwsError(f"unreadable AWS response{f' ({action})' if action else ''}: {detail}") from exc


def check_credentials(args: Any, *, sess: boto3.Session | None = None) -> dict[str, str]:
    """Call sts:GetCallerIdentity; returns Account/Arn or raises a one-line AwsError."""
    with aws_errors("sts:GetCallerIdentity"):
        ident = client(args, "sts", sess=sess).get_caller_identity()
    return {"Account": ident["Account"], "Arn": ident["Arn"]}


def delete_bucket(s3: Any, bucket: str) -> None:
    """Every object version and delete marker of ``bucket`` (1,000 a call), then the bucket.

    The one way a versioned bucket is emptied: ``destroy`` (gip.cli.destroy) and the account
    cleaner (worker.cleaning.stacks). Errors are boto3's, for the caller to wrap."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)
