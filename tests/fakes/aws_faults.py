"""AWS faults injected in front of moto, at botocore's ``before-call`` hook.

A handler for ``before-call.<service>.<Operation>`` that returns ``(http, parsed)`` replaces
the request: botocore raises the error class for ``parsed["Error"]["Code"]`` exactly as it
would for an answer from DynamoDB, and pynamodb wraps it as it would in production. Calls
with no fault planned go on to moto untouched.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse


@dataclass
class Fault:
    """One planned error answer: an error code, and for transactions one reason per item."""

    code: str
    message: str = "injected"
    reasons: list[str] | None = None  # "None" for an item that did not fail
    status: int = 400


@dataclass
class AwsFaults:
    """Plan faults per operation (``PutItem``, ``TransactWriteItems``, …); each is used once."""

    client: Any
    service: str = "dynamodb"
    planned: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.client.meta.events.register_first(f"before-call.{self.service}", self._before)

    def close(self) -> None:
        self.client.meta.events.unregister(f"before-call.{self.service}", self._before)

    def fail(self, operation: str, fault: Fault, *, times: int = 1) -> None:
        self.planned[operation].extend([fault] * times)

    def _before(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        self.calls[model.name] += 1
        queue = self.planned.get(model.name)
        if not queue:
            return None
        fault = queue.pop(0)
        self.injected[model.name] += 1
        parsed: dict[str, Any] = {
            "Error": {"Code": fault.code, "Message": fault.message},
            "ResponseMetadata": {"HTTPStatusCode": fault.status, "HTTPHeaders": {}},
        }
        if fault.reasons is not None:
            parsed["CancellationReasons"] = [
                {"Code": code, **({"Message": fault.message} if code != "None" else {})}
                for code in fault.reasons
            ]
        return AWSResponse(f"https://{self.service}.invalid/", fault.status, {}, None), parsed
