"""CloudFormation custom-resource protocol, pure: parse requests, build responses.

CloudFormation sends a request (directly, or wrapped in an SNS notification when the
ServiceToken is a topic) and waits up to an hour for a JSON document PUT to the presigned S3
``ResponseURL``. The field names below are CloudFormation's, exactly:

- request:  RequestType, ResponseURL, StackId, RequestId, ResourceType, LogicalResourceId,
            PhysicalResourceId (Update/Delete only), ResourceProperties, OldResourceProperties
- response: Status (SUCCESS|FAILED), Reason (required when FAILED), PhysicalResourceId,
            StackId, RequestId, LogicalResourceId, NoEcho, Data

https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
The response body must stay under 4096 bytes, so a long Reason is truncated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from gip.errors import UsageError

RequestType = Literal["Create", "Update", "Delete"]
Status = Literal["SUCCESS", "FAILED"]

REQUEST_TYPES: tuple[str, ...] = ("Create", "Update", "Delete")
REQUIRED_FIELDS: tuple[str, ...] = (
    "RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId",
)
MAX_RESPONSE_BYTES = 4096
MAX_REASON_CHARS = 1024


class InvalidRequest(UsageError):
    """A custom-resource request is missing a field or has a malformed one."""


@dataclass(frozen=True)
class CustomResourceRequest:
    """One CloudFormation custom-resource request (the fields we use, CloudFormation's names)."""

    request_type: RequestType
    response_url: str
    stack_id: str
    request_id: str
    logical_resource_id: str
    resource_type: str = "Custom::Resource"
    physical_resource_id: str | None = None
    resource_properties: Mapping[str, Any] = field(default_factory=dict)
    old_resource_properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stack_account_id(self) -> str:
        """The account that owns the stack: field 5 of ``arn:aws:cloudformation:r:ACCOUNT:stack/...``."""
        parts = self.stack_id.split(":")
        return parts[4] if len(parts) > 5 else ""


def parse_request(payload: Mapping[str, Any]) -> CustomResourceRequest:
    """Validate and parse one raw request document. Raises :class:`InvalidRequest`."""
    if not isinstance(payload, Mapping):
        raise InvalidRequest("custom-resource request is not a JSON object")
    missing = [name for name in REQUIRED_FIELDS if not isinstance(payload.get(name), str) or not payload.get(name)]
    if missing:
        raise InvalidRequest(f"custom-resource request lacks {', '.join(missing)}")
    request_type = payload["RequestType"]
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"unknown RequestType {request_type!r}")
    if request_type in ("Update", "Delete") and not payload.get("PhysicalResourceId"):
        raise InvalidRequest(f"{request_type} request lacks PhysicalResourceId")
    props = payload.get("ResourceProperties") or {}
    old = payload.get("OldResourceProperties") or {}
    if not isinstance(props, Mapping) or not isinstance(old, Mapping):
        raise InvalidRequest("ResourceProperties must be an object")
    return CustomResourceRequest(
        request_type=request_type,
        response_url=payload["ResponseURL"],
        stack_id=payload["StackId"],
        request_id=payload["RequestId"],
        logical_resource_id=payload["LogicalResourceId"],
        resource_type=str(payload.get("ResourceType") or "Custom::Resource"),
        physical_resource_id=payload.get("PhysicalResourceId") or None,
        resource_properties=dict(props),
        old_resource_properties=dict(old),
    )


def unwrap_messages(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Yield the raw request documents in a Lambda event.

    Accepts a direct invocation (the request itself), an SNS event (``Records[].Sns.Message``),
    and an SQS event whose bodies are raw requests or SNS notifications (SNS → SQS).
    A body that is not JSON is yielded as ``{}`` so the caller can report it.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not records:
        yield event
        return
    for record in records:
        if "Sns" in record:
            yield _loads(record["Sns"].get("Message", ""))
        elif "body" in record:
            body = _loads(record["body"])
            if body.get("Type") == "Notification" and "Message" in body:
                body = _loads(body["Message"])
            yield body
        else:
            yield {}


def _loads(text: Any) -> Mapping[str, Any]:
    if isinstance(text, Mapping):
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, Mapping) else {}


def salvage(payload: Mapping[str, Any]) -> CustomResourceRequest | None:
    """Best effort for a request that failed validation: enough to answer FAILED, or None.

    A stack waits an hour for an answer; if we can see a ResponseURL we must answer it.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("ResponseURL"), str):
        return None
    request_type = payload.get("RequestType")
    return CustomResourceRequest(
        request_type=request_type if request_type in REQUEST_TYPES else "Create",
        response_url=payload["ResponseURL"],
        stack_id=str(payload.get("StackId") or ""),
        request_id=str(payload.get("RequestId") or ""),
        logical_resource_id=str(payload.get("LogicalResourceId") or ""),
        physical_resource_id=payload.get("PhysicalResourceId") or None,
    )


def build_response(
    request: CustomResourceRequest,
    *,
    status: Status,
    physical_resource_id: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    no_echo: bool = False,
) -> dict[str, Any]:
    """The response document CloudFormation expects, echoing the request's identifiers."""
    if status not in ("SUCCESS", "FAILED"):
        raise ValueError(f"status must be SUCCESS or FAILED, not {status!r}")
    if status == "FAILED" and not reason:
        reason = "failed (no reason given)"
    response: dict[str, Any] = {
        "Status": status,
        "Reason": _clip(reason, MAX_REASON_CHARS),
        "PhysicalResourceId": physical_resource_id,
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_resource_id,
        "NoEcho": no_echo,
        "Data": {str(k): str(v) for k, v in (data or {}).items()},
    }
    if len(encode_response(response)) > MAX_RESPONSE_BYTES:
        # Data is the only unbounded part left; drop it rather than have CloudFormation reject us.
        response["Data"] = {}
        response["Reason"] = _clip(response["Reason"] + " (response Data dropped: over 4096 bytes)", MAX_REASON_CHARS)
    return response


def encode_response(response: Mapping[str, Any]) -> bytes:
    """The exact PUT body."""
    return json.dumps(response, separators=(",", ":"), sort_keys=True).encode("utf-8")


def put_headers(body: bytes) -> dict[str, str]:
    """Headers for the presigned PUT: the URL is signed without a content type, so send none."""
    return {"Content-Type": "", "Content-Length": str(len(body))}


def response_url_allowed(url: str, *, extra_hosts: tuple[str, ...] = ()) -> bool:
    """Only answer to S3 presigned URLs (https, ``*.amazonaws.com``), or an allowed test host.

    A forged request could otherwise make the registrar PUT to any URL (SSRF).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if host and host in {h.lower() for h in extra_hosts}:
        return parts.scheme in ("http", "https")
    aws = host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")
    return parts.scheme == "https" and aws


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
