"""A fake CloudFormation client: the StackSet calls the registrar makes, with the states moto
cannot show (moto finishes every StackSet operation at once, so no DELETE is ever running).

Answers in boto3's shapes and raises botocore's ClientError, as the real client does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeStackSets:
    """One StackSet's instances and operations; ``calls`` records every request."""

    def __init__(self, name: str, *, region: str = "us-east-1") -> None:
        self.name = name
        self.region = region
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    # -- arranging a scene
    def deploy(self, account: str, *, stack_id: str = "", status: str = "SUCCEEDED") -> str:
        """An instance for the account (its stack, named as StackSets names them); its StackId."""
        stack_id = stack_id or (f"arn:aws:cloudformation:{self.region}:{account}:stack/"
                    f"StackSet-{self.name}-{uuid.uuid4()}/{uuid.uuid4()}")
        op = self._operation("CREATE", status="RUNNING" if status == "RUNNING" else "SUCCEEDED")
        self.instances[(account, self.region)] = {
            "StackSetId": f"{self.name}:{uuid.uuid4()}", "Region": self.region, "Account": account,
            "StackId": stack_id, "Status": "CURRENT", "StackInstanceStatus": {"DetailedStatus": status},
            "OrganizationalUnitId": "ou-abcd-12345678", "LastOperationId": op,
        }
        return stack_id

    def start_delete(self, account: str) -> None:
        """A DELETE operation in progress on the account's instance."""
        instance = self.instances[(account, self.region)]
        instance["LastOperationId"] = self._operation("DELETE", status="RUNNING")
        instance["StackInstanceStatus"] = {"DetailedStatus": "RUNNING"}
        instance["Status"] = "OUTDATED"

    def finish_delete(self, account: str) -> None:
        del self.instances[(account, self.region)]

    def _operation(self, action: str, *, status: str) -> str:
        op = str(uuid.uuid4())
        self.operations[op] = {"OperationId": op, "Action": action, "Status": status}
        return op

    # -- the boto3 surface
    def get_paginator(self, name: str) -> Any:
        assert name == "list_stack_instances", name
        fake = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                yield fake.list_stack_instances(**kwargs)

        return Paginator()

    def list_stack_instances(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("ListStackInstances", kwargs))
        if kwargs["StackSetName"] != self.name:
            raise _error("StackSetNotFoundException", f"StackSet {kwargs['StackSetName']} not found",
                         "ListStackInstances")
        account, region = kwargs.get("StackInstanceAccount"), kwargs.get("StackInstanceRegion")
        return {"Summaries": [dict(s) for (a, r), s in self.instances.items()
                              if account in (None, a) and region in (None, r)]}

    def describe_stack_set_operation(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeStackSetOperation", kwargs))
        op = self.operations.get(kwargs["OperationId"])
        if op is None:
            raise _error("OperationNotFoundException", "no such operation", "DescribeStackSetOperation")
        return {"StackSetOperation": dict(op)}
