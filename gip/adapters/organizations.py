"""The few Organizations/STS reads the lifecycle needs (boto3 clients injected)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class OrgAccount:
    account_id: str
    status: str  # ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED, PENDING_ACTIVATION
    in_scope: bool = True


class Organization:
    """The few Organizations/STS reads the lifecycle needs (boto3 clients injected)."""

    def __init__(self, orgs: Any, sts: Any, *, role_name: str, external_id: str = "",
                 partition: str = "aws") -> None:
        self.orgs = orgs
        self.sts = sts
        self.role_name = role_name
        self.partition = partition  # the management account's: members share it
        self.external_id = external_id
        self._management: str | None = None

    def management_account_id(self) -> str:
        """The organization's management account, which is never a pool member."""
        if self._management is None:
            try:
                self._management = self.orgs.describe_organization()["Organization"]["MasterAccountId"]
            except self.orgs.exceptions.AccessDeniedException:
                # We run in the management account; its identity needs no permission.
                self._management = self.sts.get_caller_identity()["Account"]
        return self._management

    def scope_accounts(self, target_ou_ids: tuple[str, ...]) -> dict[str, OrgAccount]:
        """Accounts under the target OUs (nested OUs included), or the whole org if none."""
        if not target_ou_ids:
            pages = self.orgs.get_paginator("list_accounts").paginate()
            return {a["Id"]: _org_account(a) for page in pages for a in page["Accounts"]}
        found: dict[str, OrgAccount] = {}
        for parent in self._ou_tree(target_ou_ids):
            pages = self.orgs.get_paginator("list_accounts_for_parent").paginate(ParentId=parent)
            found.update({a["Id"]: _org_account(a) for page in pages for a in page["Accounts"]})
        return found

    def _ou_tree(self, roots: tuple[str, ...]) -> list[str]:
        seen: list[str] = []
        todo = list(roots)
        while todo:
            parent = todo.pop()
            if parent in seen:
                continue
            seen.append(parent)
            pages = self.orgs.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent)
            todo.extend(ou["Id"] for page in pages for ou in page["OrganizationalUnits"])
        return seen

    def describe(self, account_id: str) -> OrgAccount | None:
        """DescribeAccount; None when the account is not (or no longer) in the organization."""
        try:
            return _org_account(self.orgs.describe_account(AccountId=account_id)["Account"])
        except self.orgs.exceptions.AccountNotFoundException:
            return None

    def parent_in_scope(self, parent_id: str, target_ou_ids: tuple[str, ...]) -> bool:
        """Is ``parent_id`` a target OU or below one? Everything is in scope without targets."""
        if not target_ou_ids:
            return True
        node = parent_id
        for _ in range(10):  # Organizations nests OUs at most five deep
            if node in target_ou_ids:
                return True
            if node.startswith("r-") or not node:
                return False
            parents = self.orgs.list_parents(ChildId=node)["Parents"]
            node = parents[0]["Id"] if parents else ""
        return False

    def account_in_scope(self, account_id: str, target_ou_ids: tuple[str, ...]) -> bool:
        if not target_ou_ids:
            return True
        parents = self.orgs.list_parents(ChildId=account_id)["Parents"]
        return bool(parents) and self.parent_in_scope(parents[0]["Id"], target_ou_ids)

    def role_arn(self, account_id: str) -> str:
        """Our processing role in an account not registered yet (once registered, its row has the ARN)."""
        return f"arn:{self.partition}:iam::{account_id}:role/{self.role_name}"

    def can_assume(self, account_id: str) -> bool:
        """Whether our processing role in the account can be assumed now (the stack is there)."""
        # The check only needs AssumeRole to succeed: a deny-all session policy makes the
        # credentials it returns worthless, so the lifecycle Lambdas never hold member rights.
        kwargs: dict[str, Any] = {"RoleArn": self.role_arn(account_id),
                                  "RoleSessionName": "gip-lifecycle-check", "DurationSeconds": 900,
                                  "Policy": DENY_ALL_SESSION_POLICY}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        try:
            self.sts.assume_role(**kwargs)
        except Exception as exc:  # AccessDenied is the expected "not yet": any failure means no
            log.info("cannot assume %s yet: %s", kwargs["RoleArn"], type(exc).__name__)
            return False
        return True


DENY_ALL_SESSION_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'
)


def _org_account(raw: Mapping[str, Any]) -> OrgAccount:
    # "State" (newer API) is finer than the legacy "Status" (no PENDING_CLOSURE/CLOSED there).
    return OrgAccount(account_id=str(raw["Id"]), status=str(raw.get("State") or raw.get("Status") or ""))


