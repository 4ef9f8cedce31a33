"""What a cleaner is given: the account, the allowed regions, member credentials, protection."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

STACKSET_STACK_PREFIX = "StackSet-"
# Roles that let the management account and CloudFormation StackSets into a member account.
ACCESS_ROLES = ("OrganizationAccountAccessRole", "AWSCloudFormationStackSetExecutionRole")
ACCESS_ROLE_PREFIXES = ("stacksets-exec-", "AWSServiceRoleFor", "AWSReservedSSO_")
_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


@dataclass(frozen=True)
class Protection:
    """Our own resources in a member account: never deleted, never residue.

    The member StackSet (templates/member-account.yaml) makes only the processing role and the
    registration custom resource, inside stacks named ``StackSet-<prefix>-…``: nothing billable.
    So no billable resource is ever protected: a run cannot hide a miner behind a tag.
    """

    prefix: str
    role_name: str

    @property
    def stack_prefix(self) -> str:
        return f"{STACKSET_STACK_PREFIX}{self.prefix}-"

    def stack(self, name: str) -> bool:
        return name.startswith(self.stack_prefix)

    def role(self, name: str) -> bool:
        return name == self.role_name or name in ACCESS_ROLES or name.startswith(ACCESS_ROLE_PREFIXES)


@dataclass(frozen=True)
class CleanupJob:
    """What to clean. ``credentials()`` gives the member role's AWS_* variables (fresh)."""

    account_id: str
    lease_id: str | None
    regions: tuple[str, ...]
    credentials: Callable[[], Mapping[str, str]]
    protection: Protection
    since: datetime | None = None
    until: datetime | None = None
    endpoint_url: str | None = None
    management_account: str = ""
    sleep: Callable[[float], None] = time.sleep
    wait_s: float = 600.0
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def region(self) -> str:
        """The home region (the worker's): global services are called there."""
        return self.regions[0]

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client acting with the member role in ``region`` (cached per job)."""
        key = (service, region or self.region)
        if key not in self._clients:
            creds = self.credentials()
            self._clients[key] = boto3.client(
                service, region_name=key[1], endpoint_url=self.endpoint_url, config=_RETRIES,
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds.get("AWS_SESSION_TOKEN"))
        return self._clients[key]


Cleaner = Callable[[CleanupJob], list[str]]
