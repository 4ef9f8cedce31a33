"""Registrar: the SNS-backed custom resource in the member StackSet template.

The member-account stack's ``Custom::AccountRegistration`` has a ServiceToken that is an SNS
topic in the management account; its policy admits only the StackSet's execution role
(``stacksets-exec-*``) of our organization. This Lambda, subscribed to the topic, turns the
request into a pool command and always answers the presigned ResponseURL, on every path, so
that a stack never waits an hour:

- Create  → ``Pool.register(account, source="stackset")``; a repeat is a success that appends
            nothing; a deregistered account that comes back through the StackSet rejoins.
- Update  → no-op, same PhysicalResourceId (a new id would make CloudFormation Delete the old).
- Delete  → ``AccountDeregistered`` (reason ``removed``), shared with the Organizations events.

Trust: the body is not trusted. The account comes from the StackId, a property naming another
account is refused, and before Create or Delete touches the pool, CloudFormation must confirm
it (:mod:`gip.adapters.stack_instance`): a forged request changes nothing and logs one line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gip.adapters import custom_resource as cr
from gip.adapters.stack_instance import Verdict
from gip.domain.envelope import ACCOUNT_RE, Cause
from gip.errors import AwsError, GipError

log = logging.getLogger(__name__)

PHYSICAL_PREFIX = "gip-pool-account-"
FAILED_PREFIX = "gip-pool-failed-"
ROLE_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$")


class PoolLike(Protocol):
    def register(self, account_id: str, *, role_arn: str, source: str, cause: Cause) -> Any: ...
    def deregister(self, account_id: str, *, reason: str, cause: Cause) -> Any: ...
    def get(self, account_id: str) -> Any: ...


class InstanceCheck(Protocol):
    def check(self, request_type: str, *, account: str, stack_id: str) -> Verdict: ...


class Unconfirmed(cr.InvalidRequest):
    """CloudFormation does not confirm the request: it is forged, stale or early."""


@dataclass(frozen=True)
class Outcome:
    """What to answer CloudFormation (the decision, before any I/O)."""

    status: cr.Status
    physical_resource_id: str
    reason: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    account_id: str
    role_arn: str


def registration_of(request: cr.CustomResourceRequest, *, role_name: str) -> Registration:
    """The account (from the StackId) and its processing role; refuse mismatching properties."""
    account = request.stack_account_id
    if not ACCOUNT_RE.match(account):
        raise cr.InvalidRequest(f"StackId {request.stack_id!r} does not name an account")
    props = request.resource_properties
    claimed = str(props.get("AccountId") or account)
    if claimed != account:
        raise cr.InvalidRequest(f"AccountId {claimed} is not the stack's account {account}")
    partition = request.stack_id.split(":")[1] if request.stack_id.count(":") > 1 else "aws"
    role_arn = str(props.get("RoleArn") or f"arn:{partition}:iam::{account}:role/{role_name}")
    match = ROLE_ARN_RE.match(role_arn)
    if not match or match["account"] != account:
        raise cr.InvalidRequest(f"RoleArn {role_arn!r} is not a role in account {account}")
    return Registration(account_id=account, role_arn=role_arn)


def physical_id(account_id: str) -> str:
    return f"{PHYSICAL_PREFIX}{account_id}"


class Registrar:
    """Apply one request to the pool and answer CloudFormation. I/O injected for tests."""

    def __init__(
        self,
        pool: PoolLike,
        *,
        instances: InstanceCheck,
        role_name: str,
        management_account_id: str = "",
        deregister: Callable[..., Any] | None = None,
        http_put: Callable[..., Any] | None = None,
        extra_hosts: tuple[str, ...] = (),
        timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.instances = instances
        self.role_name = role_name
        self.management_account_id = management_account_id
        self._deregister = deregister or (
            lambda account_id, *, reason, cause: pool.deregister(account_id, reason=reason, cause=cause)
        )
        self._put = http_put
        self.extra_hosts = extra_hosts
        self.timeout = timeout

    def handle(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """Process one raw request; returns the response sent (None if it could not be answered)."""
        try:
            request = cr.parse_request(payload)
        except cr.InvalidRequest as exc:
            salvaged = cr.salvage(payload)
            if salvaged is None:
                log.error("custom-resource request dropped, no ResponseURL: %s", exc)
                return None
            request = salvaged
            outcome = Outcome("FAILED", request.physical_resource_id or _failed_id(request), str(exc))
        else:
            outcome = self.decide_and_apply(request)
        response = cr.build_response(
            request,
            status=outcome.status,
            physical_resource_id=outcome.physical_resource_id,
            reason=outcome.reason,
            data=outcome.data,
        )
        self.answer(request.response_url, response)
        return response

    def decide_and_apply(self, request: cr.CustomResourceRequest) -> Outcome:
        """Never raises: every failure becomes a FAILED outcome with a one-line Reason."""
        try:
            return self._apply(request)
        except GipError as exc:
            return Outcome("FAILED", _keep_or_failed(request), str(exc))
        except Exception as exc:  # the stack must still get an answer
            log.exception("registrar failed on %s %s", request.request_type, request.request_id)
            return Outcome("FAILED", _keep_or_failed(request), f"internal error: {type(exc).__name__}: {exc}")

    def _apply(self, request: cr.CustomResourceRequest) -> Outcome:
        cause = Cause(correlation_id=f"cfn-{request.request_id}", actor="registrar")
        if request.request_type == "Delete":
            return self._delete(request, cause)
        reg = registration_of(request, role_name=self.role_name)
        if request.request_type == "Update":
            return Outcome("SUCCESS", request.physical_resource_id or physical_id(reg.account_id),
                           data={"AccountId": reg.account_id, "Registered": "unchanged"})
        if reg.account_id == self.management_account_id:
            raise cr.InvalidRequest("the management account is never a pool member")
        self._confirm(request, reg.account_id)
        event = self.pool.register(reg.account_id, role_arn=reg.role_arn, source="stackset", cause=cause)
        return Outcome("SUCCESS", physical_id(reg.account_id),
                       data={"AccountId": reg.account_id, "Registered": "new" if event else "already"})

    def _delete(self, request: cr.CustomResourceRequest, cause: Cause) -> Outcome:
        pid = request.physical_resource_id or ""
        if not pid.startswith(PHYSICAL_PREFIX):
            # A failed Create's rollback, or not ours: nothing was registered under this id.
            return Outcome("SUCCESS", pid or _failed_id(request))
        account = pid.removeprefix(PHYSICAL_PREFIX)
        if account != request.stack_account_id:
            raise cr.InvalidRequest(f"stack of account {request.stack_account_id} cannot deregister {account}")
        self._confirm(request, account)
        event = self._deregister(account, reason="removed", cause=cause)
        return Outcome("SUCCESS", pid, data={"AccountId": account, "Deregistered": "new" if event else "already"})

    def _confirm(self, request: cr.CustomResourceRequest, account: str) -> None:
        verdict = self.instances.check(request.request_type, account=account, stack_id=request.stack_id)
        if not verdict.confirmed:
            # One line an operator can alert on; the StackId is attacker-controlled, so %r.
            log.warning("registrar refused %s for account %s (stack %r): %s; the pool is unchanged",
                        request.request_type, account, request.stack_id[:300], verdict.reason)
            raise Unconfirmed(f"not confirmed by the StackSet: {verdict.reason}")

    def answer(self, url: str, response: Mapping[str, Any]) -> None:
        """PUT the response. Raise on a transport failure so that Lambda retries the message."""
        if not cr.response_url_allowed(url, extra_hosts=self.extra_hosts):
            log.error("refusing to answer a non-S3 ResponseURL (host not allowed)")
            return
        body = cr.encode_response(response)
        put = self._put or _requests_put()
        try:
            reply = put(url, data=body, headers=cr.put_headers(body), timeout=self.timeout)
        except Exception as exc:
            raise AwsError(f"could not answer CloudFormation: {type(exc).__name__}") from exc
        status = getattr(reply, "status_code", 200)
        if status >= 300:
            raise AwsError(f"CloudFormation response URL answered HTTP {status}")


def _failed_id(request: cr.CustomResourceRequest) -> str:
    return f"{FAILED_PREFIX}{request.request_id or 'unknown'}"


def _keep_or_failed(request: cr.CustomResourceRequest) -> str:
    # Update/Delete must echo the existing id; a failed Create gets an id Delete knows to skip.
    return request.physical_resource_id or _failed_id(request)


def _requests_put() -> Callable[..., Any]:
    import requests  # local: keep cold starts light for the other paths

    return requests.put
