"""Playing Lambda in-process: a function's handler, its environment and a real-shaped context.

The functions are read from the Lambda API after the deploy (handler string, environment,
timeout), so local mode runs exactly what the template wires, with the same handler code.
All functions share this process: their environments are merged into ``os.environ`` once
(they agree on every shared name; a conflict is refused rather than guessed).
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gip.errors import ConfigError

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Function:
    """What the template deployed for one Lambda function."""

    name: str
    arn: str
    handler: str  # "handlers.gatekeeper.handler"
    timeout_s: int = 30
    memory_mb: int = 256
    env: Mapping[str, str] = field(default_factory=dict)

    def load(self) -> Handler:
        """Import the handler the way the Lambda runtime does (``module.attribute``)."""
        module_name, _, attribute = self.handler.rpartition(".")
        return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]

    def context(self) -> LambdaContext:
        return LambdaContext(self)


class LambdaContext:
    """The attributes and method of the Lambda context object the handlers may use."""

    def __init__(self, function: Function) -> None:
        self.function_name = function.name
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def from_configuration(config: Mapping[str, Any]) -> Function:
    """Pure: a Lambda ``FunctionConfiguration`` → :class:`Function`."""
    return Function(
        name=str(config["FunctionName"]), arn=str(config["FunctionArn"]),
        handler=str(config["Handler"]), timeout_s=int(config.get("Timeout") or 3),
        memory_mb=int(config.get("MemorySize") or 128),
        env={str(k): str(v) for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()},
    )


def merged_environment(functions: Iterable[Function]) -> dict[str, str]:
    """Pure: the union of the functions' environments; two different values is a ConfigError."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function in functions:
        for key, value in function.env.items():
            if key in merged and merged[key] != value:
                raise ConfigError(f"local mode runs every function in one process, but {key} is "
                                  f"{merged[key]!r} for {owner[key]} and {value!r} for {function.name}")
            merged[key], owner[key] = value, function.name
    return merged


def scheduled_event(*, rule_arn: str, account: str, region: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as a schedule rule delivers it."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": region,
        "resources": [rule_arn], "detail": {},
    }
